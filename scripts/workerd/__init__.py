"""Real workerd, offline: what it takes to run the Python Worker on the binary wrangler ships.

workerd fetches the Pyodide bundle of the Python release a Worker's configuration selects
from the internet when it starts, unless ``--pyodide-bundle-disk-cache-dir`` already holds
it. This package builds that bundle from npm ``pyodide`` (the exact version of the release)
and, because the built bundle is not byte-identical to Cloudflare's, a copy of the binary
expecting the built bundle's checksum. ``scripts/prepare_workerd.py`` is the command.

* :mod:`.releases` reads the releases table compiled into the binary and picks the one a
  ``wrangler.toml`` selects;
* :mod:`.bundle` patches Pyodide's glue as workerd's build does and packs the bundle;
* :mod:`.capnp` writes the Cap'n Proto message the bundle is.
"""
