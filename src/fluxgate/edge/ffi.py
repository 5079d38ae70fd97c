"""Small, explicit conversions between Python and JavaScript values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from js import Object, Uint8Array
from pyodide.ffi import JsProxy, create_proxy, to_js

try:  # Pyodide >= 0.28 can surface JS null as a distinct sentinel
    from pyodide.ffi import jsnull
except ImportError:  # pragma: no cover - older Pyodide maps null to None
    jsnull = None


def unwrap(binding: Any) -> Any:
    """The raw JS binding, also when the Workers SDK wrapped ``env`` for automatic RPC
    conversion: our adapters convert explicitly, so they must see the JS object itself.

    A binding that is a JS object already is returned as it is, never asked for
    ``_binding``: on an RPC stub (a service binding, such as a stand-in ``AI``) any
    property is a remote method, so the question would answer with a stub, and every
    call through it would fail. That happened to an isolate whose gateway was first built
    from the raw ``env`` (its first request a signed download)."""
    if isinstance(binding, JsProxy):
        return binding
    return getattr(binding, "_binding", binding)


def raw_env(env: Any) -> Any:
    """The JS ``env`` under the SDK's per-event wrapper (``workers.rpc._EnvWrapper``).

    The wrapper converts every binding on first access in each event; a path that reads
    bindings and vars itself, on every request (the file route), reads the JS object.
    """
    return getattr(env, "_env", env)


def is_nullish(value: Any) -> bool:
    return value is None or value is jsnull


def js_object(value: dict[str, Any]) -> JsProxy:
    """A plain JS object (not a ``Map``), which is what binding options must be."""
    return to_js(value, dict_converter=Object.fromEntries)


def js_bytes(data: bytes) -> JsProxy:
    """A ``Uint8Array`` holding a copy of ``data``."""
    array = Uint8Array.new(len(data))
    array.assign(data)
    return array


def py_dict(value: Any) -> dict[str, Any]:
    if is_nullish(value):
        return {}
    if isinstance(value, JsProxy):
        converted = value.to_py()
        return dict(converted) if isinstance(converted, dict) else {}
    return dict(value)


def js_text(value: Any) -> str | None:
    """A JS string (a header, a var) as Python's; ``None`` for ``null`` or ``undefined``.
    Called for every header a request reads: the check is inlined."""
    return None if value is None or value is jsnull else str(value)


def wait_until(ctx: Any, work: Any) -> None:
    """``ctx.waitUntil`` for an awaitable that a JS call returned.

    Pyodide hands a JS promise back to Python as a ``PyodideFuture``. Passing that to JS
    again makes a *borrowed* proxy, destroyed as soon as the call returns, so the runtime
    would later find a dead object. Hand over a proxy that lives until the work is done (a
    thenable, which ``waitUntil`` adopts like a promise).
    """
    if isinstance(work, JsProxy):
        ctx.waitUntil(work)
        return
    proxy = create_proxy(work)
    work.add_done_callback(lambda _done: proxy.destroy())
    ctx.waitUntil(proxy)


MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER


def _sql_value(value: Any) -> Any:
    if value is None:
        return jsnull
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > MAX_SAFE_INTEGER:
            raise OverflowError("a SQL binding is outside JavaScript's safe integers")
        if abs(value) == MAX_SAFE_INTEGER:
            # Pyodide hands this one over as a BigInt (it converts only |x| < 2**53 - 1 to
            # a Number), which SqlStorage refuses; as a double it is exact.
            return float(value)
    return value


def sql_bindings(params: Any) -> list[Any]:
    """Bindings for ``SqlStorage.exec``. Python ``None`` would arrive as ``undefined``, which
    is not a SQL value; SQL NULL is JS ``null``. workerd binds JS numbers and refuses a
    BigInt with a bare ``TypeError`` ("Cannot convert a BigInt value to a number"): an
    integer a double cannot hold is refused here, where the bug is made, and the largest
    safe one goes over as the exact double it is."""
    return [_sql_value(value) for value in params]


def py_value(value: Any) -> Any:
    """A JS value as Python: RPC results arrive as proxies or already converted, depending
    on the value and on whether the SDK's wrapper converted them."""
    return value.to_py() if isinstance(value, JsProxy) else value


def sql_executor(storage: Any) -> Callable[[str, Sequence[Any]], list[Sequence[Any]]]:
    """``exec(sql, params) -> rows`` over a Durable Object's ``ctx.storage.sql``.

    The SDK wraps ``ctx.storage`` for automatic RPC conversion; the tables run several
    statements per call, so they talk to the raw ``SqlStorage`` without that layer.
    ``SqlStorage.exec`` is synchronous: nothing interleaves between a read and a write.
    """
    sql = unwrap(storage).sql

    def execute(query: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        cursor = sql.exec(query, *sql_bindings(params))
        return [list(row) for row in cursor.raw()]

    return execute
