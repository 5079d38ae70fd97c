"""Test doubles that behave like the Cloudflare services they stand for.

The AI double is the local :class:`PlaceholderAI`, which enforces the binding's multipart
contract; these wrappers only add what a test needs on top: scripted upstream failures,
and stores that fail the way a real outage does (an exception from the awaited call).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import Mapping
from typing import Any

from PIL import Image

from fluxgate.delivery.variants import TransformError
from fluxgate.local.placeholder import InferenceUpstreamError, PlaceholderAI, vision_image
from fluxgate.store.ports import StorageError


class ScriptedAI(PlaceholderAI):
    """The contract-enforcing AI double, plus failures queued with :meth:`fail_next`."""

    def __init__(self) -> None:
        super().__init__()
        self._failures: list[str] = []
        self.inputs: list[Any] = []
        self.called_models: list[str] = []  # the model id of each call, in order

    def fail_next(self, message: str) -> None:
        self._failures.append(message)

    async def run(self, model: str, inputs: Any) -> dict[str, str]:
        self.inputs.append(inputs)
        self.called_models.append(model)
        if self._failures:
            raise InferenceUpstreamError(self._failures.pop(0))
        return await super().run(model, inputs)


class FlakyKV:
    """A KV store whose writes (or reads) fail for keys with the given prefixes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_put_prefixes: tuple[str, ...] = ()
        self.fail_get_prefixes: tuple[str, ...] = ()
        self.reads: list[str] = []

    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        self.reads.append(key)
        if key.startswith(self.fail_get_prefixes or ("\0",)):
            raise StorageError("KV GET failed: 503 Service Unavailable")
        return await self.inner.get(key, cache_ttl=cache_ttl)

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        if key.startswith(self.fail_put_prefixes or ("\0",)):
            raise StorageError("KV PUT failed: 429 Too Many Requests")
        await self.inner.put(key, value, ttl=ttl, metadata=metadata)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def list(self, prefix: str, *, limit: int = 1000, cursor: str | None = None) -> Any:
        return await self.inner.list(prefix, limit=limit, cursor=cursor)


class FlakyObjects:
    """An object store whose writes (``fail_puts``) or deletions (``fail_deletes``) can be
    made to fail."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_puts = False
        self.fail_deletes = False
        self.calls: list[str] = []

    async def put(self, key: str, data: bytes, **kwargs: Any) -> Any:
        if self.fail_puts:
            raise StorageError("R2 PUT failed: 500 We encountered an internal error")
        return await self.inner.put(key, data, **kwargs)

    async def head(self, key: str) -> Any:
        self.calls.append("head")
        return await self.inner.head(key)

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> Any:
        self.calls.append("get")
        return await self.inner.get(key, byte_range)

    async def read_image(self, key: str) -> Any:
        self.calls.append("get")
        return await self.inner.read_image(key)

    async def delete(self, key: str) -> None:
        if self.fail_deletes:
            raise StorageError("R2 DELETE failed: 500 We encountered an internal error")
        await self.inner.delete(key)

    async def list(self, prefix: str) -> Any:
        return await self.inner.list(prefix)


def image_bytes(
    fmt: str, width: int, height: int, color: tuple[int, int, int] = (200, 30, 60), **save: Any
) -> bytes:
    """A real encoded image, made with Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt, **save)
    return buffer.getvalue()


class FakeGuardAI:
    """Llama Guard behind the AI binding's ``run``: checks the chat input it is given and
    answers in the model's JSON shape. Tests choose which words are unsafe (and in which
    category), or make the next calls fail as Workers AI does."""

    MODEL = "@cf/meta/llama-guard-3-8b"

    def __init__(self) -> None:
        self.unsafe: dict[str, str] = {}
        self.failures: list[str] = []
        self.calls = 0
        self.answer_text = False  # answer "unsafe\nS1" instead of the JSON object

    async def run(self, model: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if model != self.MODEL:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        messages = inputs.get("messages")
        if not isinstance(messages, list) or not all(
            isinstance(m, Mapping) and {"role", "content"} <= set(m) for m in messages
        ):
            raise InferenceUpstreamError("5006: required properties at '/messages' are 'role'")
        self.calls += 1
        if self.failures:
            raise InferenceUpstreamError(self.failures.pop(0))
        text = " ".join(str(m["content"]) for m in messages).casefold()
        hits = sorted({cat for word, cat in self.unsafe.items() if word in text})
        if self.answer_text:
            return {"response": "unsafe\n" + ",".join(hits) if hits else "safe"}
        return {"response": {"safe": not hits, "categories": hits}}


class FakeScoutAI:
    """Llama 4 Scout (the output classifier) behind the AI binding's ``run``: holds the
    chat input to the model's contract (``vision_image``: one data-URI image whose bytes are
    the format it names, a ``response_format``), then answers the next scripted verdict
    (``verdicts``: ``{"safe", "categories"}``; safe when none is left) in the answer
    ``form`` chosen (``object``, ``json_text`` or Llama Guard's ``text``), or the next of
    ``failures`` as Workers AI raises it. ``seen``: each image it was shown."""

    MODEL = "@cf/meta/llama-4-scout-17b-16e-instruct"

    def __init__(self) -> None:
        self.verdicts: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.form = "object"
        self.calls = 0
        self.seen: list[dict[str, Any]] = []

    async def run(self, model: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        if model != self.MODEL:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        mime, data = vision_image(inputs)
        self.calls += 1
        digest = hashlib.sha256(data).hexdigest()
        self.seen.append({"model": model, "format": mime, "size": len(data), "sha256": digest})
        if self.failures:
            raise InferenceUpstreamError(self.failures.pop(0))
        verdict = self.verdicts.pop(0) if self.verdicts else {"safe": True, "categories": []}
        usage = {"prompt_tokens": 1200, "completion_tokens": 12, "total_tokens": 1212}
        if self.form == "json_text":
            return {"response": json.dumps(verdict), "usage": usage}
        if self.form == "text":
            cats = ",".join(verdict["categories"])
            return {"response": "safe" if verdict["safe"] else f"unsafe\n{cats}", "usage": usage}
        return {"response": verdict, "usage": usage}


class HeldLedger:
    """The budget ledger, whose reservations can be held until a gate opens (``hold()``
    returns the gate); otherwise it is the ledger itself."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._gate: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self._gate = asyncio.Event()
        return self._gate

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        if self._gate is not None:
            await self._gate.wait()
        return await self.inner.reserve(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class CountingTransformer:
    """An image transformer (Pillow locally) that counts the images it made, as the
    Images binding double of the Pyodide unit harness reports its ``output()`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.made = 0
        self._failures = 0
        self._started: asyncio.Event | None = None
        self._gate: asyncio.Event | None = None

    def fail(self, count: int = 1) -> None:
        """The next ``count`` transforms fail, as the Images binding's errors do."""
        self._failures = count

    def hold(self) -> None:
        """Transforms wait, their original already read, until :meth:`release` (called in
        the test's event loop): a variant caught in the middle of its making."""
        self._started = asyncio.Event()
        self._gate = asyncio.Event()

    async def started(self) -> None:
        """Until a held transform has begun."""
        assert self._started is not None, "hold() first"
        await self._started.wait()

    def release(self) -> None:
        """Let the held transforms (and every later one) go on."""
        assert self._gate is not None, "hold() first"
        self._gate.set()

    async def transform(self, original: Any, width: int, fmt: str) -> Any:
        self.made += 1
        if self._started is not None and self._gate is not None:
            self._started.set()
            await self._gate.wait()
        if self._failures:
            self._failures -= 1
            raise TransformError("IMAGES_TRANSFORM_ERROR 9412: input is not an image (code 9412)")
        return await self.inner.transform(original, width, fmt)
