"""Real encoded images for the tests (reference images, uploads, decoders' inputs)."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def image_bytes(
    fmt: str, width: int, height: int, color: tuple[int, int, int] = (200, 30, 60), **save: Any
) -> bytes:
    """A real encoded image, made with Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=fmt, **save)
    return buffer.getvalue()
