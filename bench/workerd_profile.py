"""Where a request's CPU goes on workerd: V8's sampling profiler, through workerd's inspector.

The stack is started with ``--inspector-addr=127.0.0.1:0`` (each workerd process picks a
free port; this module finds the runtime's from ``/proc``). A Worker's isolate is a target
of its own (``core:user:<worker name>``); the Chrome DevTools protocol's ``Profiler``
domain samples it while a batch of requests runs. The samples name JS functions, workerd's
native API functions (no script URL), and WebAssembly functions by index: Pyodide's
interpreter ships without a name section, but it exports nearly every C symbol for its
dynamically linked extensions, so the export names of ``pyodide.asm.wasm`` (the npm package
the bundle is built from) name its functions.

Each sample is put in one category by its innermost frame (:func:`category`), so the
categories add up to the isolate's sampled time. Python frames themselves are not visible:
the interpreter's C functions are. The profiler costs CPU of its own (a 50 µs interval, about
130 µs achieved), and it measures wall time between samples, so the figures are shares of
where the isolate's time goes, not the CPU per request the benchmark measures without it.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import websocket

INSPECTOR_ARGS = "--inspector-addr=127.0.0.1:0"
SAMPLING_INTERVAL_US = 50
GAP_FACTOR = 4  # a delta this many times the median one is a gap in sampling (see _count)

PYTHON = "Python: the interpreter and its C extensions"
FFI = "FFI: Python and JS calling and converting each other"
NATIVE = "workerd's native API (bindings, Request, Response, Headers, console)"
GC = "V8's garbage collector"
JS = "other JS (workerd's own modules)"
OUTSIDE = "outside the isolate's JS (workerd's C++, other isolates)"
IDLE = "idle"
CATEGORIES = (PYTHON, FFI, NATIVE, GC, JS, OUTSIDE)

# Pyodide's C functions that cross between Python and JS: its proxies, its conversions and
# the promise glue of JSPI (a coroutine awaiting a JS promise and resumed by it).
_FFI_C = re.compile(
    r"^(_?pyproxy|_?jsproxy|JsProxy|JsMethod|Jsv|Js2Py|Py2Js|python2js|js2python|hiwire|"
    r"wrap_promise|create_promise|FutureDoneCallback|_?PyProxy|JsBuffer|JsArray|JsObj|"
    r"enter_promising|exit_promising|_pyodide|pyodide_|js_|JsString|JsException)"
)


def export_names(wasm: Path) -> dict[int, str]:
    """Function index → name, from the module's import and export sections."""
    data = wasm.read_bytes()

    def leb(at: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[at]
            at += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, at

    def name(at: int) -> tuple[str, int]:
        size, at = leb(at)
        return data[at : at + size].decode("utf-8", "replace"), at + size

    names: dict[int, str] = {}
    imported = 0
    at = 8  # magic and version
    while at < len(data):
        section = data[at]
        size, at = leb(at + 1)
        end = at + size
        if section == 2:  # imports: functions come first in the index space
            count, cursor = leb(at)
            for _ in range(count):
                _, cursor = name(cursor)
                field, cursor = name(cursor)
                kind = data[cursor]
                cursor += 1
                if kind == 0:  # function: its type index
                    _, cursor = leb(cursor)
                    names[imported] = f"import:{field}"
                    imported += 1
                elif kind == 1:  # table: element type, limits
                    cursor = _limits(leb, cursor + 1)
                elif kind == 2:  # memory: limits
                    cursor = _limits(leb, cursor)
                elif kind == 3:  # global: value type, mutability
                    cursor += 2
                elif kind == 4:  # tag: attribute, type index
                    _, cursor = leb(cursor + 1)
        elif section == 7:  # exports
            count, cursor = leb(at)
            for _ in range(count):
                field, cursor = name(cursor)
                kind = data[cursor]
                index, cursor = leb(cursor + 1)
                if kind == 0:
                    names.setdefault(index, field)
        at = end
    return names


def _limits(leb: Any, at: int) -> int:
    flags, at = leb(at)
    _, at = leb(at)  # minimum
    if flags & 1:
        _, at = leb(at)  # maximum
    return int(at)


@dataclass(frozen=True)
class Frame:
    """A sampled frame: its function name (wasm ones named when exported) and script."""

    function: str
    url: str
    wasm: bool


def category(frame: Frame) -> str:
    """The category of a sample whose innermost frame is ``frame``."""
    if frame.function == "(idle)":
        return IDLE
    if frame.function in ("(program)", "(root)"):
        return OUTSIDE
    if frame.function == "(garbage collector)":
        return GC
    if frame.wasm:
        return FFI if _FFI_C.match(frame.function) else PYTHON
    if frame.function.startswith(("wasm-to-js", "js-to-wasm")):
        return FFI
    if "pyodide" in frame.url or "python-entrypoint" in frame.url or "workers-api" in frame.url:
        return FFI  # Pyodide's JS glue and the SDK's entry point
    if not frame.url:
        return NATIVE
    return JS


@dataclass(frozen=True)
class Profile:
    """Sampled milliseconds per request, by category and by innermost function."""

    requests: int
    by_category: dict[str, float]
    top: list[tuple[str, str, float]]  # (category, function, ms per request)

    def busy_ms(self) -> float:
        """What the isolate's own JS and WebAssembly took, per request."""
        return sum(v for k, v in self.by_category.items() if k not in (IDLE, OUTSIDE))

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "by_category_ms": self.by_category,
            "top": [{"category": c, "function": f, "ms": ms} for c, f, ms in self.top],
        }


def analyse(profiles: list[dict[str, Any]], requests: int, names: dict[int, str]) -> Profile:
    """``Profiler.stop`` profiles of ``requests`` requests in all, per request."""
    by_category: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    for profile in profiles:
        _count(profile, names, by_category, by_function)
    per = 1000 * requests
    return Profile(
        requests,
        {k: by_category[k] / per for k in (*CATEGORIES, IDLE)},
        [(k, f, us / per) for (k, f), us in by_function.most_common(12)],
    )


def _count(
    profile: dict[str, Any],
    names: dict[int, str],
    by_category: Counter[str],
    by_function: Counter[tuple[str, str]],
) -> None:
    calls = {node["id"]: node["callFrame"] for node in profile["nodes"]}
    # Pyodide's interpreter is the module with the most functions (thousands); extensions
    # (pydantic-core ...) and JSPI's trampolines are others, whose functions stay by index.
    largest: dict[str, int] = {}
    for call in calls.values():
        if (index := _wasm_index(call["functionName"])) is not None:
            largest[call["url"]] = max(index, largest.get(call["url"], 0))
    interpreter = max(largest, key=lambda url: largest[url], default=None)
    frames: dict[int, Frame] = {}
    for node_id, call in calls.items():
        function, url = call["functionName"] or "(anonymous)", call["url"]
        index = _wasm_index(function)
        if index is not None and url == interpreter:
            function = names.get(index, function)
        frames[node_id] = Frame(function, url, index is not None)
    # Each delta is the time to the next sample. A gap far longer than the sampling interval
    # is a time V8 could not sample this isolate (not running: other isolates, workerd's
    # I/O, the client between requests), whatever the last stack was: it counts as one
    # ordinary interval, not as the gap.
    deltas = [*profile["timeDeltas"][1:], 0]
    cap = GAP_FACTOR * statistics.median(deltas) if deltas else 0
    for sample, delta in zip(profile["samples"], deltas, strict=True):
        delta = min(delta, cap)
        frame = frames[sample]
        kind = category(frame)
        by_category[kind] += delta
        by_function[(kind, frame.function)] += delta


def _wasm_index(function: str) -> int | None:
    """A WebAssembly function's index from V8's name for it (``wasm-function[1234]``)."""
    prefix = "wasm-function["
    return int(function[len(prefix) : -1]) if function.startswith(prefix) else None


def listening_ports(pid: int) -> list[int]:
    """The TCP ports process ``pid`` listens on (IPv4), from ``/proc``."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            sockets.add(target[len("socket:[") : -1])
    ports = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in sockets:  # LISTEN
            ports.append(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


class Inspector:
    """A DevTools protocol session with one isolate."""

    def __init__(self, url: str) -> None:
        self._socket = websocket.create_connection(url, timeout=600, suppress_origin=True)
        self._id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        self._socket.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:  # events (console lines ...) arrive in between; the answer has the id
            message = json.loads(self._socket.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def close(self) -> None:
        self._socket.close()


def isolates(pid: int) -> dict[str, str]:
    """Each Worker's inspector URL (``webSocketDebuggerUrl``) in workerd process ``pid``, by
    Worker name."""
    import httpx

    for port in listening_ports(pid):
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5)
        except httpx.TransportError:
            continue
        if answer.status_code == 200:
            prefix = "core:user:"
            return {
                t["id"][len(prefix) :]: t["webSocketDebuggerUrl"]
                for t in answer.json()
                if t["id"].startswith(prefix)
            }
    raise RuntimeError(f"workerd process {pid} has no inspector listening")
