"""Variants on Workers: the Cloudflare Images binding as the variants' ``ImageTransformer``.

The binding (``[images] binding = "IMAGE_TRANSFORMS"``) takes the image as a JS
``ReadableStream`` only: workerd's client treats anything else as a text source, so a
``Uint8Array`` fails at ``output()`` with a ``TypeError``, not an ``ImagesError``. The
stream is made in JS around the original's ``Uint8Array`` (``Blob([array]).stream()``) and
the result read back in JS (``Response(image()).arrayBuffer()``): on Workers the bytes never
pass through Python, in either direction (see ``image_buffer.py``).

The binding's ``ImagesError`` carries the service's numeric ``code`` (9412 not an image,
9413 too large, 9401 invalid options, 9422 over the Free plan's transformations, ...) and a
message ``IMAGES_TRANSFORM_ERROR <code>: <text>``; it reaches Python as a ``JsException``
and leaves as a :class:`~fluxgate.delivery.variants.TransformError` naming the code.

The service picks codecs on a best-effort basis (AVIF only up to 1,200 px a side): an answer
in another format than asked would be stored under the wrong name, so it is refused.

The same binding renders an image for its perceptual fingerprint (:meth:`gray_grid`): scaled
down to :func:`~fluxgate.provenance.fingerprint.rendering_width` (64 pixels wide for most),
as PNG, whose few thousand pixels are decoded to gray in Python
(:mod:`fluxgate.imaging.png_pixels`). Width only, and PNG: Miniflare's local binding applies
width, height and rotate, and has no raw ``rgb`` output.
"""

from __future__ import annotations

from typing import Any

from js import Array, Blob, Reflect, Response, Uint8Array
from pyodide.ffi import JsException

from ...delivery.variants import FORMATS, TransformError, TransformUnavailable
from ...imaging.formats import ImageFormatError, inspect_image
from ...imaging.image_bytes import ImageBytes
from ...imaging.png_pixels import PngPixelsError, gray_pixels
from ...provenance.fingerprint import MAX_GRID_SIDE, RENDER_SIDE, GrayGrid, rendering_width
from ..ffi import js_bytes, js_object, unwrap
from .image_buffer import JsImage


def _error_code(exc: JsException) -> int | None:
    """The ``code`` of an ``ImagesError`` (``None`` for any other JS error)."""
    code = getattr(exc, "code", None)
    if code is None:  # older Pyodide: the JS error hangs off the exception
        code = getattr(getattr(exc, "js_error", None), "code", None)
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def _stream_of(original: ImageBytes) -> Any:
    """A JS ``ReadableStream`` over the original's bytes (its own ``Uint8Array`` on Workers)."""
    array = original.array if isinstance(original, JsImage) else js_bytes(original.python_bytes())
    return Reflect.construct(Blob, Array.of(Array.of(array))).stream()


class WorkersImageTransformer:
    """``original`` → ``input(stream).transform({width, fit: "scale-down"}).output({format})``."""

    def __init__(self, binding: Any) -> None:
        self._images = unwrap(binding)

    async def transform(self, original: ImageBytes, width: int, fmt: str) -> JsImage:
        return JsImage(Uint8Array.new(await self._render(original, width, FORMATS[fmt])))

    async def gray_grid(self, image: ImageBytes) -> GrayGrid:
        """The fingerprint's rendering (:class:`~fluxgate.provenance.fingerprint.GrayRenderer`):
        a PNG about 12 KB of pixels, decoded in Python."""
        width = RENDER_SIDE
        try:
            info = inspect_image(image.head())
            width = rendering_width(info.width, info.height)
        except ImageFormatError:
            pass  # a format the head does not tell the size of: the binding may still read it
        png = bytes(Uint8Array.new(await self._render(image, width, "image/png")).to_bytes())
        shown = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        if max(shown) > MAX_GRID_SIDE:  # a shape no rendering fits (1 px wide, 300 tall)
            raise ValueError(f"a rendering of {shown[0]}x{shown[1]} does not fit a gray grid")
        try:
            return GrayGrid(*gray_pixels(png))
        except PngPixelsError as exc:
            raise TransformError(f"the Images binding's rendering is unreadable: {exc}") from exc

    async def _render(self, original: ImageBytes, width: int, mime: str) -> Any:
        """The binding's answer as an ``ArrayBuffer`` (refused unless it is ``mime``)."""
        try:
            transformer = self._images.input(_stream_of(original))
            transformer.transform(js_object({"width": width, "fit": "scale-down"}))
            result = await transformer.output(js_object({"format": mime}))
            content_type = str(result.contentType())
            if content_type != mime:
                raise TransformError(f"the Images binding answered {content_type}, not {mime}")
            return await Response.new(result.image()).arrayBuffer()
        except JsException as exc:
            code = _error_code(exc)
            if code is None:
                raise TransformUnavailable(f"the Images binding failed: {exc}") from exc
            raise TransformError(f"the Images binding refused the image (code {code})") from exc


def transformer_from_env(env: Any) -> WorkersImageTransformer | None:
    """Variants when the Images binding is declared (else they answer 501)."""
    binding = getattr(env, "IMAGE_TRANSFORMS", None)
    return None if binding is None else WorkersImageTransformer(binding)
