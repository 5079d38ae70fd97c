"""Fluxgate: an edge image-generation API for FLUX.2 [dev].

The package root is the runtime-agnostic core. ``fluxgate.edge`` holds the Cloudflare
Workers adapters (the only modules that touch ``js``); ``fluxgate.local`` holds the CPython
runtime (SQLite, a directory of objects, the Workers AI REST API or a placeholder model).
"""

__version__ = "0.1.0"

FLUX_MODEL_ID = "@cf/black-forest-labs/flux-2-dev"
# The names a request may use for it (``model``, ``/v1/models/{id}``).
FLUX_MODEL_ALIASES = frozenset({FLUX_MODEL_ID, "flux-2-dev", "black-forest-labs/flux-2-dev"})
