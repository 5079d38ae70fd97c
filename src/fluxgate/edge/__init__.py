"""Cloudflare Workers adapters: the only modules that import ``js`` or ``pyodide``.

Each adapter gives a binding the shape of a core port (KV → :class:`KVStore`, R2 →
:class:`ObjectStore`, AI → :class:`ImageModel`) and does its conversions explicitly, so the
core never sees a ``JsProxy``. None of them imports pydantic: they run (and are tested) in
plain Pyodide.
"""
