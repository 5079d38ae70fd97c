"""Shim of workerd's ``_cloudflare_compat_flags`` module for the Pyodide harness.

In workerd this module exposes the Worker's compatibility flags as booleans. The harness
runs with none of the optional Python flags enabled, so every flag reads as ``False``.
"""


def __getattr__(name: str) -> bool:
    return False
