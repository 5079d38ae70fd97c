"""Variants made with Pillow: the local peer of the Cloudflare Images binding.

Pillow is part of the ``local`` extra, not of the Worker (which uses the Images binding):
it is imported on first use, and a server without it simply has no variants
(:func:`pillow_transformer` returns ``None``; requests naming variants answer
``501 variants_unavailable``). Decoding and encoding take tens of milliseconds of CPU
(hundreds for AVIF), so they run in a thread, never on the event loop, and on a small pool
of their own (:data:`ENCODE_THREADS`): on the default executor they would queue the SQLite
stores' calls (every authenticated request's key lookup, ledger, usage) behind a burst of
encodes. Past the pool's threads, encodes wait their turn in its queue.

The recipe is fixed (Lanczos resampling, one quality per format, no metadata carried
over), so the same original always gives the same variant: what makes the variant's
strong ETag true (:func:`fluxgate.delivery.variants.variant_etag`).

The same pool renders an image for its perceptual fingerprint (:func:`render_gray`): as the
Images binding does on Workers, scaled down to
:func:`~fluxgate.provenance.fingerprint.rendering_width` with Lanczos, then BT.601 luma.
"""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..delivery.variants import FORMATS, TransformError
from ..imaging.image_bytes import ImageBytes, InProcessImage
from ..provenance.fingerprint import GrayGrid, rendering_width

# Qualities in the ranges the Images binding documents as its defaults (85 for lossy
# formats); AVIF's scale is perceptually stricter, so a lower number looks alike.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "webp": {"format": "WEBP", "quality": 82, "method": 4},
    "avif": {"format": "AVIF", "quality": 60, "speed": 6},
    "jpeg": {"format": "JPEG", "quality": 85, "optimize": True, "progressive": True},
    "png": {"format": "PNG", "optimize": False, "compress_level": 6},
}
# A decompression bomb is refused: originals are at most 1920x1920 here (models.MAX_SIZE).
_MAX_PIXELS = 4096 * 4096


def _decoded(data: bytes, keep_alpha: bool) -> Any:
    """``data`` decoded as RGB (or RGBA when it has alpha and ``keep_alpha``), refused past
    :data:`_MAX_PIXELS`."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.width * opened.height > _MAX_PIXELS:
                raise TransformError(f"the original is {opened.width}x{opened.height}")
            alpha = keep_alpha and "A" in opened.getbands()
            return opened.convert("RGBA" if alpha else "RGB")
    except (OSError, ValueError, SyntaxError, RuntimeError, Image.DecompressionBombError) as exc:
        # Pillow's decoders also raise SyntaxError ("broken PNG file") and RuntimeError
        # (the AVIF decoder) on damaged input: every one is the input's fault.
        raise TransformError(f"the original could not be decoded: {exc}") from exc


def _scaled_down(image: Any, width: int) -> Any:
    """``image`` at ``width`` (Lanczos), its aspect ratio kept; a narrower one unchanged."""
    from PIL import Image

    if width >= image.width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def encode_variant(data: bytes, width: int, fmt: str) -> bytes:
    """``data`` (an original) scaled down to ``width`` and encoded as ``fmt``: CPU-bound,
    run on the transformer's pool."""
    image = _scaled_down(_decoded(data, keep_alpha=True), width)
    if fmt == "jpeg" and image.mode == "RGBA":  # JPEG has no alpha channel
        image = image.convert("RGB")
    out = io.BytesIO()
    try:
        image.save(out, **_SAVE_OPTIONS[fmt])
    except (OSError, KeyError, ValueError) as exc:
        raise TransformError(f"{fmt} encoding failed: {exc}") from exc
    return out.getvalue()


def render_gray(data: bytes) -> tuple[int, int, bytes]:
    """The fingerprint's rendering of ``data``: ``(width, height, luma)``, alpha ignored (as
    ``convert("L")`` and :mod:`fluxgate.imaging.png_pixels` ignore it)."""
    image = _decoded(data, keep_alpha=False)
    gray = _scaled_down(image, rendering_width(image.width, image.height)).convert("L")
    return gray.width, gray.height, gray.tobytes()


# Half the cores (one on two): encodes never take every core from the event loop and the
# stores' threads. Pillow releases the GIL while it resamples and encodes.
ENCODE_THREADS = max(1, min(4, (os.cpu_count() or 2) // 2))
THREAD_PREFIX = "fluxgate-pillow"


class PillowTransformer:
    """The :class:`~fluxgate.delivery.variants.ImageTransformer` of the local runtime, encoding on a
    pool of its own (threads start on the first encode, not before)."""

    def __init__(self, threads: int = ENCODE_THREADS) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=THREAD_PREFIX)

    async def transform(self, original: ImageBytes, width: int, fmt: str) -> ImageBytes:
        if fmt not in FORMATS:
            raise TransformError(f"unknown format {fmt!r}")
        data = original.python_bytes()
        loop = asyncio.get_running_loop()
        return InProcessImage(
            await loop.run_in_executor(self._pool, encode_variant, data, width, fmt)
        )

    async def gray_grid(self, image: ImageBytes) -> GrayGrid:
        """The fingerprint's rendering (:class:`~fluxgate.provenance.fingerprint.GrayRenderer`)."""
        data = image.python_bytes()
        loop = asyncio.get_running_loop()
        return GrayGrid(*await loop.run_in_executor(self._pool, render_gray, data))


def pillow_transformer() -> PillowTransformer | None:
    """A transformer when Pillow (with AVIF, Pillow >= 11.3) is installed, else ``None``."""
    if importlib.util.find_spec("PIL") is None:
        return None
    from PIL import features

    return PillowTransformer() if features.check("avif") and features.check("webp") else None
