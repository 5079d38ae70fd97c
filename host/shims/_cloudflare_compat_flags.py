"""The Worker host's ``_cloudflare_compat_flags``: the Worker's compatibility flags.

workerd exposes each flag as a boolean attribute; the host reads them from wrangler.toml's
``compatibility_flags`` (passed in by ``host/worker.mjs``). A flag not listed is ``False``.
"""

from _fluxgate_host import compatFlags

_FLAGS = frozenset(filter(None, str(compatFlags).split(",")))


def __getattr__(name: str) -> bool:
    if name.startswith("__"):
        raise AttributeError(name)
    return name in _FLAGS
