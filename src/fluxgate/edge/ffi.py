"""Small, explicit conversions between Python and JavaScript values."""

from __future__ import annotations

from typing import Any

from js import Object, Uint8Array
from pyodide.ffi import JsProxy, to_js

try:  # Pyodide >= 0.28 can surface JS null as a distinct sentinel
    from pyodide.ffi import jsnull
except ImportError:  # pragma: no cover - older Pyodide maps null to None
    jsnull = None


def unwrap(binding: Any) -> Any:
    """The raw JS binding, also when the Workers SDK wrapped ``env`` for automatic RPC
    conversion: our adapters convert explicitly, so they must see the JS object itself."""
    return getattr(binding, "_binding", binding)


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
    return None if is_nullish(value) else str(value)
