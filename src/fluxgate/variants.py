"""Variants of a stored image: a fixed set of widths and formats, made once, kept beside it.

A variant is named ``<width>.<format>`` (``256.webp``). Only the widths and formats listed
here exist: arbitrary sizes would let anyone with one signed URL make the gateway encode
(and the store keep) unbounded numbers of files. Pydantic-free: the Workers file route
imports this without loading FastAPI.
"""

from __future__ import annotations

from typing import Protocol

from .image_bytes import ImageBytes

WIDTHS = (128, 256, 512, 1024)
FORMATS = {"webp": "image/webp", "avif": "image/avif", "jpeg": "image/jpeg", "png": "image/png"}


class TransformError(Exception):
    """The transformer refused the input or failed (the service's code in the message)."""


class ImageTransformer(Protocol):
    """What makes a variant: the Cloudflare Images binding on Workers, Pillow locally."""

    async def transform(self, original: ImageBytes, width: int, fmt: str) -> ImageBytes:
        """``original`` scaled down (never up) to ``width`` pixels wide, its aspect ratio
        kept, encoded as ``fmt`` (a key of :data:`FORMATS`); metadata is not carried over.
        Raises :class:`TransformError`."""
        ...
