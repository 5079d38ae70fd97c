"""Recognising PNG, JPEG and WebP by their bytes and reading their dimensions.

Clients' declared content types and file names are not trusted: the model accepts only
these three formats, and only reference images smaller than 512x512, so both facts are read
from the file header itself. Output images are typed the same way, because the model's
output format is not documented.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

MIME_BY_FORMAT = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSION_BY_MIME = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


class ImageFormatError(ValueError):
    """The bytes are not a supported image, or its header is unreadable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int

    @property
    def mime(self) -> str:
        return MIME_BY_FORMAT[self.format]

    @property
    def extension(self) -> str:
        return EXTENSION_BY_MIME[self.mime]


def sniff_format(data: bytes) -> str | None:
    """Name the container format from the magic bytes, including ones we then refuse."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        return "heif/avif"
    return None


def inspect_image(data: bytes) -> ImageInfo:
    """Return format and dimensions, or raise :class:`ImageFormatError`."""
    fmt = sniff_format(data)
    if fmt not in MIME_BY_FORMAT:
        what = f"a {fmt.upper()} image" if fmt else "not a recognised image"
        raise ImageFormatError(
            "unsupported_format", f"The image is {what}; only PNG, JPEG and WebP are accepted."
        )
    try:
        width, height = _READERS[fmt](data)
    except (struct.error, IndexError, ValueError) as exc:
        raise ImageFormatError("corrupt", f"The {fmt.upper()} header is unreadable.") from exc
    if width <= 0 or height <= 0:
        raise ImageFormatError("corrupt", f"The {fmt.upper()} header gives no size.")
    return ImageInfo(fmt, width, height)


def _png_size(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ValueError("bad marker")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker == 0xD9 or length < 2:
            break
        i += 2 + length
    raise ValueError("no SOF marker")


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise ValueError("bad VP8 start code")
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        if data[20] != 0x2F:
            raise ValueError("bad VP8L signature")
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    raise ValueError("unknown WebP chunk")


_READERS = {"png": _png_size, "jpeg": _jpeg_size, "webp": _webp_size}
