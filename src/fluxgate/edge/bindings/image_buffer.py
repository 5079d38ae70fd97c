"""Generated images on Workers: JS buffers that Python reads the head of, never copies.

The AI binding answers ``{"image": base64}``. Reading ``result.image`` from Python would
convert the ~1.6 MB string into a Python ``str`` (~8 ms of CPU in Pyodide 314), then
decoding, hashing and copying it back for R2 would cost as much again. Here the string
is decoded by ``Uint8Array.fromBase64``, hashed by ``crypto.subtle.digest``, written to R2
and base64-encoded for a ``b64_json`` answer, all in JavaScript.

A Worker may not evaluate JS source, and every JS string a call returns to Python is
converted at the FFI boundary (and a JS promise becomes a Python future). So a string that
must stay in JS travels inside a one-element JS array (``Object.entries`` →
``entry.slice(1)``), transformed by ``map`` with built-in functions, and each chain ends in
an object, never a bare string. The helpers are made on first use,
per isolate: derived JS functions cannot be part of the deploy-time memory snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from js import (
    Array,
    Blob,
    Function,
    Object,
    Reflect,
    String,
    Uint8Array,
    crypto,
    fetch,
)
from pyodide.ffi import JsProxy

from ...imaging import b64
from ...imaging.image_bytes import HEAD_BYTES, SplicePart
from ..ffi import js_bytes, js_object


@cache
def _base64_builtins() -> tuple[Any, Any]:
    """``Uint8Array.fromBase64`` and ``Uint8Array.prototype.toBase64`` (ES2026: in workerd;
    in Node 24 behind ``--js-base-64``, which the Pyodide unit harness passes), or ``None``."""
    return getattr(Uint8Array, "fromBase64", None), getattr(Uint8Array.prototype, "toBase64", None)


def _in_js(template: tuple[str, str]) -> Any:
    """``f(s, ...) = template[0] + s + template[1]`` as a JS function (``String.raw`` uses
    as many substitutions as the template has gaps: the rest of ``map``'s are ignored)."""
    return String.raw.bind(String, js_object({"raw": list(template)}))


class JsImage:
    """An image as a JS ``Uint8Array`` (the :class:`~fluxgate.imaging.image_bytes.ImageBytes` of
    Workers). ``array`` is what R2 writes and what a ``b64_json`` body is built from."""

    def __init__(self, array: JsProxy) -> None:
        self.array = array
        self._size = int(array.byteLength)

    @property
    def size(self) -> int:
        return self._size

    def head(self, limit: int = HEAD_BYTES) -> bytes:
        return bytes(self.array.subarray(0, limit).to_bytes())

    def read(self, start: int, end: int) -> bytes:
        return bytes(self.array.subarray(start, end).to_bytes())

    def splice(self, parts: Sequence[SplicePart]) -> JsImage:
        """One new ``Uint8Array`` of the total size, filled in JS: ranges are ``subarray``
        views of this one (no copy until ``set``), literal parts are copied in once."""
        total = sum(p[1] - p[0] if isinstance(p, tuple) else len(p) for p in parts)
        out = Uint8Array.new(total)
        offset = 0
        for part in parts:
            if isinstance(part, tuple):
                start, end = part
                if not 0 <= start <= end <= self._size:
                    raise ValueError("splice range outside the image")
                out.set(self.array.subarray(start, end), offset)
                offset += end - start
            elif part:
                out.set(js_bytes(part), offset)
                offset += len(part)
        return JsImage(out)

    def image_url(self, mime: str) -> Any:
        """``{url: "data:<mime>;base64,..."}`` as a JS object whose string never leaves JS:
        ``[[array]]`` → ``[url]`` as in :func:`json_around`, then ``Array.of("url", url,
        …)`` per element (``Object.fromEntries`` reads an entry's first two items only)."""
        _, to_base64 = _base64_builtins()
        prefix = f"data:{mime};base64,"
        if to_base64 is None:
            return js_object({"url": prefix + b64.encode(self.python_bytes())})
        encode = Reflect.apply.bind(None, Function.prototype.call, to_base64)
        urls = Array.of(Array.of(self.array)).map(encode).map(_in_js((prefix, "")))
        return Object.fromEntries(urls.map(Array.of.bind(Array, "url")))

    async def sha256(self) -> str:
        digest = await crypto.subtle.digest("SHA-256", self.array)
        return bytes(digest.to_bytes()).hex()

    async def base64(self) -> str:
        _, to_base64 = _base64_builtins()
        if to_base64 is None:
            return b64.encode(self.python_bytes())
        return str(Reflect.apply(to_base64, self.array, Array.new()))

    def python_bytes(self) -> bytes:
        return bytes(self.array.to_bytes())


async def base64_field(result: JsProxy, name: str) -> JsImage | None:
    """The bytes of ``result[name]``, a base64 string decoded in JS; ``None`` when the
    field is missing or not a string. Invalid base64 raises ``JsException``."""
    entry = next((e for e in Object.entries(result) if str(e[0]) == name), None)
    if entry is None:
        return None
    value = entry.slice(1)  # [the string]: indexing it would convert it
    kind = Reflect.apply(Function.prototype.call, Object.prototype.toString, value)
    if kind != "[object String]":
        return None
    from_base64, _ = _base64_builtins()
    if from_base64 is not None:
        return JsImage(Reflect.apply(from_base64, Uint8Array, value))
    # Without the ES2026 built-in: the platform's data: URL decoder, still all in JS.
    urls = value.map(_in_js(("data:application/octet-stream;base64,", "")))
    response = await Reflect.apply(fetch, None, urls)
    return JsImage(Uint8Array.new(await response.arrayBuffer()))


def json_around(prefix: str, image: JsImage, suffix: str) -> Any:
    """A ``Blob`` of ``prefix + base64(image) + suffix``, made in JS (a ``b64_json``
    answer whose base64 never becomes a Python string), or ``None`` when the runtime
    lacks ``toBase64``.

    Each step maps a one-element JS array, so no intermediate string is returned to
    Python: ``[[array]]`` → ``[base64]`` (``toBase64.call(array)``, through
    ``Reflect.apply``, which ignores ``map``'s extra arguments) → ``[text]`` → the Blob.
    """
    _, to_base64 = _base64_builtins()
    if to_base64 is None:
        return None
    encode = Reflect.apply.bind(None, Function.prototype.call, to_base64)
    texts = Array.of(Array.of(image.array)).map(encode).map(_in_js((prefix, suffix)))
    return Reflect.construct(Blob, Array.of(texts))
