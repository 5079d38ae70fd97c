"""Base64 for image-sized payloads.

The model answers with the image as base64 (~1.6 MB of text for a 1024x768 PNG). CPython's
``binascii`` decodes that at ~200 MB/s here (6 ms, the largest single cost of a miss);
``pybase64`` (SIMD, in the ``local`` extra) does it in ~0.1 ms. Same semantics either way:
strict alphabet, ``binascii.Error`` on bad input. Pydantic-free; on Workers (no pybase64
wheel) the standard library is used.
"""

from __future__ import annotations

try:
    import pybase64 as _codec
except ImportError:  # pragma: no cover - exercised where pybase64 is absent (Pyodide)
    import base64 as _codec  # type: ignore[no-redef]


def decode(text: str | bytes, altchars: bytes | None = None) -> bytes:
    """Strict decode: characters outside the alphabet are an error, not skipped."""
    return _codec.b64decode(text, altchars=altchars, validate=True)


def encode(data: bytes) -> str:
    return _codec.b64encode(data).decode("ascii")
