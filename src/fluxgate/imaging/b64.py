"""Base64 for image-sized payloads.

The model answers with the image as base64 (~1.6 MB of text for a 1024x768 PNG). CPython's
``binascii`` decodes that at ~200 MB/s here (6 ms, the largest single cost of a miss);
``pybase64`` (SIMD, in the ``local`` extra) does it in ~0.1 ms. Same semantics either way:
strict alphabet, ``binascii.Error`` on bad input. Pydantic-free; on Workers (no pybase64
wheel) the standard library is used.

Signatures, MACs and client-token payloads use the unpadded URL-safe alphabet
(:func:`urlsafe_encode`/:func:`urlsafe_decode`): short values, done with the standard
library.
"""

from __future__ import annotations

import base64

try:
    import pybase64 as _codec
except ImportError:  # pragma: no cover - exercised where pybase64 is absent (Pyodide)
    import base64 as _codec  # type: ignore[no-redef]


def decode(text: str | bytes, altchars: bytes | None = None) -> bytes:
    """Strict decode: characters outside the alphabet are an error, not skipped."""
    return _codec.b64decode(text, altchars=altchars, validate=True)


def encode(data: bytes) -> str:
    return _codec.b64encode(data).decode("ascii")


def urlsafe_encode(data: bytes) -> str:
    """URL-safe base64 without padding (what signed URLs and tokens carry)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def urlsafe_decode(text: str | bytes) -> bytes:
    """The inverse of :func:`urlsafe_encode`: the padding is restored first."""
    pad = b"=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text.encode() + pad if isinstance(text, str) else text + pad)
