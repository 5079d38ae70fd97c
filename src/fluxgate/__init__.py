"""Fluxgate: an edge image-generation API for the FLUX.2 family ([dev], [klein] 4B and 9B).

The package root is the runtime-agnostic core. ``fluxgate.edge`` holds the Cloudflare
Workers adapters (the only modules that touch ``js``); ``fluxgate.local`` holds the CPython
runtime (SQLite, a directory of objects, the Workers AI REST API or a placeholder model).
"""

__version__ = "0.1.0"

FLUX_MODEL_ID = "@cf/black-forest-labs/flux-2-dev"  # the default (models.DEFAULT_MODEL)
