"""The chunks of PNG and WebP files and the marker segments of JPEG, as metadata writers
need them.

Two writers put metadata into every stored image: the AI disclosure's XMP packet and the
C2PA manifest store. Each drops what an earlier writer left and inserts its own, so both
walk the same structures, read through a :data:`~fluxgate.imaging.byte_ranges.Reader`
(headers only; the image stays where the runtime keeps it), and refuse what is truncated
or inconsistent in the same words. A simple WebP (``VP8 ``/``VP8L`` alone) cannot carry
metadata chunks, so both make it extended (``VP8X``) first, the same way.
"""

from __future__ import annotations

import struct
import zlib

from .byte_ranges import ContainerError, Reader, exact

__all__ = [
    "PNG_SIGNATURE",
    "VP8X_ALPHA",
    "check_webp",
    "jpeg_segments",
    "png_chunk",
    "vp8x_chunk",
    "webp_chunks",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VP8X_ALPHA = 0x10  # the VP8X flag of an image with an alpha channel


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data and the CRC over type and data."""
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


MAX_FILL_BYTES = 4096


def jpeg_segments(read: Reader, size: int) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment after ``SOI`` and before the scan."""
    if exact(read, 0, 2) != b"\xff\xd8":
        raise ContainerError("not a JPEG")
    segments: list[tuple[int, int, int]] = []
    pos, fill = 2, 0
    while True:
        marker_bytes = exact(read, pos, pos + 2)
        if marker_bytes[0] != 0xFF:
            raise ContainerError("JPEG segment without a marker")
        marker = marker_bytes[1]
        if marker == 0xFF:  # fill byte: encoders write a few, a hostile file megabytes
            pos, fill = pos + 1, fill + 1
            if fill > MAX_FILL_BYTES:
                raise ContainerError("more JPEG fill bytes than any encoder writes")
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: the headers are over
            return segments
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", exact(read, pos + 2, pos + 4))
        if length < 2:
            raise ContainerError("JPEG segment with a bad length")
        end = pos + 2 + length
        if end > size:
            raise ContainerError("the file ends inside a JPEG segment")
        segments.append((marker, pos, end))
        pos = end


def check_webp(read: Reader, size: int) -> None:
    """That the file is a RIFF ``WEBP`` whose size field is the file's."""
    riff, riff_size, webp = struct.unpack("<4sI4s", exact(read, 0, 12))
    if riff != b"RIFF" or webp != b"WEBP":
        raise ContainerError("not a WebP")
    if riff_size + 8 != size:
        raise ContainerError("the RIFF size does not match the file")


def webp_chunks(read: Reader, size: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk of a checked WebP, its padding byte included."""
    chunks = []
    pos = 12
    while pos < size:
        if pos + 8 > size:
            raise ContainerError("the file ends inside a WebP chunk header")
        kind, length = struct.unpack("<4sI", exact(read, pos, pos + 8))
        end = pos + 8 + length + (length & 1)
        if end > size:
            raise ContainerError("the file ends inside a WebP chunk")
        chunks.append((kind, pos, end))
        pos = end
    return chunks


def vp8x_chunk(kind: bytes, bitstream: bytes, flags: int) -> bytes:
    """The ``VP8X`` chunk that makes a simple WebP extended, from the first 10 bytes of its
    ``kind`` (``VP8 `` or ``VP8L``) chunk's data: its canvas, ``flags`` and its alpha."""
    width, height, alpha = _simple_canvas(kind, bitstream)
    vp8x = struct.pack("<4sI", b"VP8X", 10) + bytes([flags | (VP8X_ALPHA if alpha else 0), 0, 0, 0])
    return vp8x + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")


def _simple_canvas(kind: bytes, data: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's bitstream."""
    if kind == b"VP8 ":
        if data[3:6] != b"\x9d\x01\x2a":
            raise ContainerError("VP8 key frame without its start code")
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if data[0] != 0x2F:
        raise ContainerError("VP8L without its signature")
    (bits,) = struct.unpack("<I", data[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)
