"""How the Pyodide harness calls handlers: workerd's handler dispatch, restated.

workerd routes every call on a Python entrypoint or Durable Object through one wrapper
(``src/pyodide/internal/introspection.py``): each JS argument goes through the SDK's
``python_from_rpc`` (a JS ``Request`` becomes ``workers.Request``, ``undefined`` ``None``,
plain objects dicts), the result through ``python_to_rpc`` (a ``workers.Response`` becomes
its JS object, dicts plain JS objects). ``fetch`` is called *relaxed* (arguments beyond the
Python signature are dropped); every other handler (``queue``, ``scheduled``, RPC methods)
is called *strictly*, with all the arguments workerd has.
"""

from inspect import isawaitable
from typing import Any

from pyodide.code import relaxed_call
from workers.rpc import python_from_rpc, python_to_rpc

RELAXED = frozenset({"fetch", "test"})


async def call(instance: Any, name: str, *args: Any) -> Any:
    method = getattr(instance, name, None)
    if not callable(method):
        raise TypeError(f"Method {name} does not exist")
    py_args = [python_from_rpc(arg) for arg in args]
    result = relaxed_call(method, *py_args) if name in RELAXED else method(*py_args)
    if isawaitable(result):
        result = await result
    return python_to_rpc(result)
