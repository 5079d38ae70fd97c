"""Shim of workerd's ``_pyodide_entrypoint_helper`` for the Pyodide harness.

The Workers SDK imports it at module level. Only what the code under test reaches is
implemented: ``patchWaitUntil`` (no-op: the harness has no request lifetime to extend) and
``doAnImport`` (JavaScript modules the SDK asks for by name are not available in Node, so it
raises, as a missing module would).
"""

from contextlib import contextmanager

cloudflareWorkersModule = None
cloudflareSocketsModule = None


def patchWaitUntil(ctx):
    return None


def doAnImport(module_name):
    raise ImportError(f"{module_name} is not available in the Pyodide harness")


@contextmanager
def patch_env_helper(kwds):
    yield
