"""Reference images: decoding, type and size checks before anything is sent upstream.

The model rejects reference images of 512x512 or more; refusing them here, with the field
named, is cheaper and clearer than paying for a round trip that fails (Fluxgate does not
resize: a silent downscale changes what the client asked for).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Sequence

from ..errors import ApiError
from ..imaging import b64
from ..imaging.formats import ImageFormatError, check_complete, inspect_image
from .family import MAX_REFERENCE_IMAGES, MAX_REFERENCE_SIDE
from .params import ReferenceImage

_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[\w=.+-]+)*;base64,", re.IGNORECASE)
# The one spelling of a reference field: ASCII digits without leading zeros, as the
# schema names them. "input_image_00" or "input_image_٣" is no slot, so it is an unknown
# parameter in both encodings, never a second copy of slot 0 or 3.
_FIELD = re.compile(r"input_image_(0|[1-9][0-9]*)")


def reference_index(field: str) -> int | None:
    """The slot a reference-image field names (``input_image_2`` -> 2), or ``None`` if
    the name is not one.

    A number past the last slot, however many digits it has, is returned as
    :data:`MAX_REFERENCE_IMAGES` without being converted (``int()`` refuses more than 4300
    digits): callers only ask whether it is a slot.
    """
    match = _FIELD.fullmatch(field)
    if match is None:
        return None
    digits = match.group(1)
    return min(int(digits), MAX_REFERENCE_IMAGES) if len(digits) <= 3 else MAX_REFERENCE_IMAGES


def too_many() -> ApiError:
    return ApiError(
        400,
        "too_many_reference_images",
        f"At most {MAX_REFERENCE_IMAGES} reference images are accepted "
        f"(input_image_0 ... input_image_{MAX_REFERENCE_IMAGES - 1}).",
    )


def decode_image_string(field: str, value: str, max_bytes: int) -> bytes:
    """Decode a base64 string or ``data:`` URL, refusing oversize input before decoding it."""
    text = _DATA_URL.sub("", value.strip(), count=1)
    text = "".join(text.split())
    if len(text) * 3 // 4 > max_bytes + 3:
        raise _too_big(field, max_bytes)
    try:
        alt = b"-_" if ("-" in text or "_" in text) else None
        data = b64.decode(text + "=" * (-len(text) % 4), altchars=alt)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, "invalid_image", f"{field} is not valid base64.", param=field) from exc
    if not data:
        raise ApiError(400, "invalid_image", f"{field} is empty.", param=field)
    return data


def _too_big(field: str, max_bytes: int) -> ApiError:
    return ApiError(
        413,
        "reference_image_too_large",
        f"{field} is larger than {max_bytes} bytes.",
        param=field,
    )


def check_references(
    images: Sequence[tuple[str, bytes]], max_bytes: int
) -> tuple[ReferenceImage, ...]:
    """Validate ``(field, bytes)`` pairs in field order; return them ready for the model."""
    if len(images) > MAX_REFERENCE_IMAGES:
        raise too_many()
    out: list[ReferenceImage] = []
    for field, data in sorted(images, key=lambda item: item[0]):
        if len(data) > max_bytes:
            raise _too_big(field, max_bytes)
        try:
            info = inspect_image(data)
        except ImageFormatError as exc:
            code = (
                "unsupported_image_type" if exc.reason == "unsupported_format" else "invalid_image"
            )
            raise ApiError(400, code, f"{field}: {exc}", param=field) from exc
        if info.width > MAX_REFERENCE_SIDE or info.height > MAX_REFERENCE_SIDE:
            raise ApiError(
                400,
                "reference_image_dimensions",
                f"{field} is {info.width}x{info.height}; reference images must be smaller than "
                "512x512 (at most 511 pixels on each side).",
                param=field,
            )
        try:
            check_complete(data, info)  # after the size check: it bounds the inflating
        except ImageFormatError as exc:
            raise ApiError(400, "invalid_image", f"{field}: {exc}", param=field) from exc
        out.append(ReferenceImage(data, info, hashlib.sha256(data).hexdigest()))
    return tuple(out)
