"""Recognising PNG, JPEG and WebP by their bytes and reading their dimensions.

Clients' declared content types and file names are not trusted: the model accepts only
these three formats, and only reference images smaller than 512x512, so both facts are read
from the file header itself. Output images are typed the same way, because the model's
output format is not documented.
"""

from __future__ import annotations

import re
import struct
import zlib
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
# Markers without a length: TEM and the restart markers RST0-RST7.
_JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8)}


def _jpeg_marker(data: bytes, pos: int) -> tuple[int, int]:
    """The marker at ``pos`` and where it stands, past any fill bytes (``FF FF``)."""
    while True:
        if data[pos] != 0xFF:
            raise ValueError("bad marker")
        if data[pos + 1] != 0xFF:
            return data[pos + 1], pos
        pos += 1


def _jpeg_size(data: bytes) -> tuple[int, int]:
    i = 2
    while i + 4 <= len(data):
        marker, i = _jpeg_marker(data, i)
        if marker == 0xD8 or marker in _JPEG_STANDALONE:
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


def check_complete(data: bytes, info: ImageInfo) -> None:
    """Raise :class:`ImageFormatError` unless ``data`` is a whole image, not just a header.

    Reference images are paid for before the model sees them, so a 24-byte PNG header
    must not pass for an image. What is checked is what can be checked cheaply without a
    decoder (Pillow is not available on Workers), in time linear in the size:

    - PNG: every chunk up to ``IEND`` is whole and its CRC matches; ``IHDR`` comes first
      with a valid bit depth / colour type pair; ``PLTE`` precedes the data when the
      colour type needs one; the ``IDAT`` chunks are consecutive and their zlib stream is
      complete and inflates to exactly the scanlines ``IHDR`` announces (bounded by it, so
      a compression bomb is never inflated), each row starting with a valid filter type.
    - JPEG: every marker segment fits in the file; a frame header (SOF) with sane fields
      precedes the first scan (SOS); scans and their entropy-coded data are followed by
      the end-of-image marker (EOI).
    - WebP: the RIFF size fits the file; every chunk fits in the RIFF; there is a VP8 key
      frame whose first partition fits its chunk, a VP8L bitstream with its signature and
      version 0, or animation frames.

    Not checked: the compressed pixel data itself (Huffman and VP8 decoding need a real
    decoder). The model may still refuse such an image; that costs a round trip, not an
    unbounded amount of work here. Bytes after the end of the image are ignored, as every
    decoder does.
    """
    try:
        _COMPLETENESS[info.format](data)
    except (struct.error, IndexError, ValueError, zlib.error) as exc:
        name = info.format.upper()
        raise ImageFormatError("corrupt", f"The {name} image is incomplete or damaged.") from exc


# PNG: colour type -> (samples per pixel, allowed bit depths)
_PNG_COLOURS = {
    0: (1, {1, 2, 4, 8, 16}),
    2: (3, {8, 16}),
    3: (1, {1, 2, 4, 8}),
    4: (2, {8, 16}),
    6: (4, {8, 16}),
}
# Adam7 passes: x offset, y offset, x step, y step
_ADAM7: tuple[tuple[int, int, int, int], ...] = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
)
_ADAM7 += ((0, 1, 1, 2),)


def _png_rows(width: int, height: int, bits_per_pixel: int, interlaced: bool) -> list[int]:
    """The length of every scanline (filter byte included), pass after pass if interlaced."""
    passes = _ADAM7 if interlaced else ((0, 0, 1, 1),)
    rows: list[int] = []
    for x0, y0, dx, dy in passes:
        pass_width = (width - x0 + dx - 1) // dx if width > x0 else 0
        pass_height = (height - y0 + dy - 1) // dy if height > y0 else 0
        if pass_width and pass_height:
            rows += [1 + (pass_width * bits_per_pixel + 7) // 8] * pass_height
    return rows


def _png_complete(data: bytes) -> None:
    pos, chunks, idat = 8, 0, bytearray()
    ihdr = b""
    palette = idat_done = False
    while True:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if len(kind) < 4 or length > 0x7FFFFFFF or end > len(data):
            raise ValueError("truncated chunk")
        body = data[pos + 8 : pos + 8 + length]
        if zlib.crc32(kind + body) != int.from_bytes(data[end - 4 : end], "big"):
            raise ValueError(f"bad CRC in {kind!r}")
        if chunks == 0 and (kind != b"IHDR" or length != 13):
            raise ValueError("IHDR is not first")
        chunks += 1
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"PLTE":
            palette = True
        elif kind == b"IDAT":
            if idat_done:
                raise ValueError("IDAT chunks are not consecutive")
            idat += body
        elif idat:
            idat_done = True
        if kind == b"IEND":
            break
        pos = end
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", ihdr
    )
    samples, depths = _PNG_COLOURS.get(colour, (0, set()))
    if depth not in depths or compression or filtering or interlace > 1:
        raise ValueError("invalid IHDR")
    if (colour == 3 and not palette) or not idat:
        raise ValueError("no palette or no image data")
    rows = _png_rows(width, height, samples * depth, interlace == 1)
    expected = sum(rows)
    inflater = zlib.decompressobj()
    pixels = inflater.decompress(bytes(idat), expected + 1)
    if len(pixels) != expected or not inflater.eof:
        raise ValueError("the image data is incomplete")
    offset = 0
    for row in rows:
        if pixels[offset] > 4:
            raise ValueError("invalid filter type")
        offset += row


# A marker inside entropy-coded data: 0xFF followed by neither a stuffed 0x00, a restart
# marker (D0-D7) nor a fill byte.
_JPEG_MARKER = re.compile(rb"\xff(?=[^\x00\xd0-\xd7\xff])")


def _jpeg_complete(data: bytes) -> None:
    pos, frame = 2, False
    while True:
        marker, pos = _jpeg_marker(data, pos)
        if marker == 0xD9:  # EOI
            if not frame:
                raise ValueError("no frame")
            return
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise ValueError("truncated segment")
        if marker in _SOF:
            precision, height, width, components = struct.unpack(">BHHB", segment[:6])
            if precision not in (8, 12, 16) or not 1 <= components <= 4 or not height:
                raise ValueError("invalid frame header")
            if length != 8 + 3 * components or not width:
                raise ValueError("invalid frame header")
            frame = True
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data runs to the next real marker
            components = segment[0]
            if not frame or not 1 <= components <= 4 or length != 6 + 2 * components:
                raise ValueError("scan before frame, or invalid scan header")
            found = _JPEG_MARKER.search(data, pos)
            if found is None:
                raise ValueError("scan data without an end")
            pos = found.start()


def _webp_complete(data: bytes) -> None:
    riff_end = 8 + int.from_bytes(data[4:8], "little")
    if riff_end > len(data) or riff_end < 20:
        raise ValueError("truncated RIFF")
    pos, image = 12, False
    while pos < riff_end:
        kind = data[pos : pos + 4]
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        body = data[pos + 8 : pos + 8 + size]
        if pos + 8 + size > riff_end:
            raise ValueError("truncated chunk")
        if kind == b"VP8 ":
            tag = int.from_bytes(body[:3], "little")
            key_frame, partition = not tag & 1, tag >> 5
            if not key_frame or body[3:6] != b"\x9d\x01\x2a" or 10 + partition > size:
                raise ValueError("invalid VP8 frame")
            image = True
        elif kind == b"VP8L":
            if size < 5 or body[0] != 0x2F or body[4] >> 5:
                raise ValueError("invalid VP8L bitstream")
            image = True
        elif kind == b"ANMF":
            image = True
        pos += 8 + size + (size & 1)
    if not image:
        raise ValueError("no image chunk")


_COMPLETENESS = {"png": _png_complete, "jpeg": _jpeg_complete, "webp": _webp_complete}
