"""The gray pixels of a small PNG, decoded in pure Python.

On Workers an image's perceptual fingerprint is computed from a small rendering that the
Cloudflare Images binding makes (``output({format: "image/png"})``; raw ``rgb`` output is not
available in local development): a PNG of a few thousand pixels, decoded here into one byte
of ITU-R BT.601 luma per pixel. Pillow is not in the Worker and numpy is not either.

Every standard PNG that is not interlaced decodes: gray (1, 2, 4, 8, 16 bits), RGB (8, 16),
palette (1, 2, 4, 8), gray with alpha and RGBA (8, 16), and all five filter types. Alpha is
ignored, as Pillow's ``convert("L")`` ignores it; 16-bit samples keep their high byte. Luma
is Pillow's fixed-point BT.601, ``(19595 R + 38470 G + 7471 B + 32768) >> 16``, so the local
runtime (Pillow) and the Worker (this) see the same grays.

What is decoded is bounded before any work is done: the file (:data:`MAX_PNG_BYTES`), the
picture's sides (``max_side``, :data:`MAX_SIDE` at most), and the inflated data, which is
decompressed only up to the exact size the header implies (a zip bomb stops there).
Anything else is refused with :class:`PngPixelsError`.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from itertools import accumulate

__all__ = ["MAX_PNG_BYTES", "MAX_SIDE", "PngPixelsError", "gray_pixels"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_SIDE = 256
# A 256x256 RGBA picture of 16-bit samples is 512 KiB raw; deflate adds little to that.
MAX_PNG_BYTES = 1024 * 1024

_GRAY, _RGB, _PALETTE, _GRAY_ALPHA, _RGBA = 0, 2, 3, 4, 6
_CHANNELS = {_GRAY: 1, _RGB: 3, _PALETTE: 1, _GRAY_ALPHA: 2, _RGBA: 4}
_DEPTHS = {
    _GRAY: (1, 2, 4, 8, 16),
    _RGB: (8, 16),
    _PALETTE: (1, 2, 4, 8),
    _GRAY_ALPHA: (8, 16),
    _RGBA: (8, 16),
}
_KNOWN_CRITICAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND"}


class PngPixelsError(ValueError):
    """The bytes are not a PNG this decoder takes: malformed, interlaced, or too large."""


def gray_pixels(data: bytes, max_side: int = MAX_SIDE) -> tuple[int, int, bytes]:
    """``(width, height, pixels)``: the PNG's luma, row-major, one byte a pixel."""
    if len(data) > MAX_PNG_BYTES:
        raise PngPixelsError(f"the PNG is {len(data)} bytes, more than {MAX_PNG_BYTES}")
    header, palette, compressed = _chunks(data)
    width, height, depth, colour = header
    if not (0 < width <= min(max_side, MAX_SIDE) and 0 < height <= min(max_side, MAX_SIDE)):
        raise PngPixelsError(f"the PNG is {width}x{height}, more than {max_side} a side")
    if colour == _PALETTE and not palette:
        raise PngPixelsError("a palette PNG without a PLTE chunk")
    channels = _CHANNELS[colour]
    stride = (width * channels * depth + 7) // 8
    raw = _inflate(compressed, height * (stride + 1))
    rows = _unfilter(raw, height, stride, max(1, channels * depth // 8))
    luma = _LumaRow(width, depth, colour, palette)
    return width, height, b"".join(luma(row) for row in rows)


def _chunks(data: bytes) -> tuple[tuple[int, int, int, int], bytes, bytes]:
    """The header ``(width, height, bit depth, colour type)``, the palette (RGB triples;
    empty when there is none) and the concatenated IDAT data, every chunk's CRC checked."""
    if not data.startswith(SIGNATURE):
        raise PngPixelsError("not a PNG")
    header: tuple[int, int, int, int] | None = None
    palette = b""
    idat: list[bytes] = []
    position = len(SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise PngPixelsError("the PNG ends before its IEND chunk")
        length, kind = struct.unpack_from(">I4s", data, position)
        body = data[position + 8 : position + 8 + length]
        if len(body) != length or position + 12 + length > len(data):
            raise PngPixelsError(f"the {kind!r} chunk runs past the end of the PNG")
        (crc,) = struct.unpack_from(">I", data, position + 8 + length)
        if zlib.crc32(kind + body) != crc:
            raise PngPixelsError(f"the {kind!r} chunk's CRC does not match")
        position += 12 + length
        if header is None and kind != b"IHDR":
            raise PngPixelsError("the PNG does not start with IHDR")
        if kind == b"IHDR":
            if header is not None:
                raise PngPixelsError("a second IHDR chunk")
            header = _header(body)
        elif kind == b"PLTE":
            if length % 3 or not 0 < length <= 3 * 256:
                raise PngPixelsError(f"a PLTE chunk of {length} bytes")
            palette = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind[0] & 0x20 == 0:  # an unknown critical chunk: cannot be ignored
            raise PngPixelsError(f"an unknown critical chunk {kind!r}")
    if header is None or not idat:
        raise PngPixelsError("the PNG has no image data")
    return header, palette, b"".join(idat)


def _header(body: bytes) -> tuple[int, int, int, int]:
    if len(body) != 13:
        raise PngPixelsError("an IHDR chunk of the wrong length")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(
        ">IIBBBBB", body
    )
    if colour not in _DEPTHS or depth not in _DEPTHS[colour]:
        raise PngPixelsError(f"bit depth {depth} with colour type {colour}")
    if compression or filtering:
        raise PngPixelsError("an unknown compression or filter method")
    if interlace:
        raise PngPixelsError("an interlaced PNG (Adam7 is not decoded)")
    return width, height, depth, colour


def _inflate(compressed: bytes, expected: int) -> bytes:
    """Exactly ``expected`` bytes of the zlib stream, decompressing no further than one byte
    past them (what refuses a stream that holds more)."""
    inflater = zlib.decompressobj()
    try:
        raw = inflater.decompress(compressed, expected + 1)
    except zlib.error as exc:
        raise PngPixelsError(f"the image data does not inflate: {exc}") from exc
    if len(raw) != expected:
        raise PngPixelsError(f"the image data inflates to {len(raw)} bytes, not {expected}")
    return raw


# -- filters --------------------------------------------------------------------------------


def _unfilter(raw: bytes, height: int, stride: int, bpp: int) -> list[bytes]:
    """The scanlines with their filters undone (``bpp``: bytes a complete pixel, at least 1)."""
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 0:
            row = line
        elif kind == 1:
            row = _sub(line, bpp)
        elif kind == 2:
            row = _up(line, previous)
        elif kind == 3:
            row = _average(line, previous, bpp)
        elif kind == 4:
            row = _paeth(line, previous, bpp)
        else:
            raise PngPixelsError(f"filter type {kind} on row {y}")
        rows.append(row)
        previous = row
    return rows


def _sub(line: bytes, bpp: int) -> bytes:
    """Each byte plus the one a pixel to its left: per channel, a running sum (mod 256)."""
    out = bytearray(len(line))
    for channel in range(bpp):
        out[channel::bpp] = bytes(total & 0xFF for total in accumulate(line[channel::bpp]))
    return bytes(out)


@lru_cache(maxsize=8)
def _byte_masks(length: int) -> tuple[int, int]:
    return int.from_bytes(b"\x7f" * length, "big"), int.from_bytes(b"\x80" * length, "big")


def _up(line: bytes, previous: bytes) -> bytes:
    """Each byte plus the one above, mod 256, all at once: the two rows as big integers
    added without carries crossing bytes (the low seven bits of each byte summed, the top
    bit put back as the exclusive or of both top bits and the carry into it)."""
    low, high = _byte_masks(len(line))
    a, b = int.from_bytes(line, "big"), int.from_bytes(previous, "big")
    return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(len(line), "big")


def _average(line: bytes, previous: bytes, bpp: int) -> bytes:
    out = bytearray(line)
    for i in range(min(bpp, len(out))):
        out[i] = (line[i] + (previous[i] >> 1)) & 0xFF
    for i in range(bpp, len(out)):
        out[i] = (line[i] + ((out[i - bpp] + previous[i]) >> 1)) & 0xFF
    return bytes(out)


def _paeth(line: bytes, previous: bytes, bpp: int) -> bytes:
    out = bytearray(line)
    for i in range(min(bpp, len(out))):  # no pixel to the left: the predictor is the one above
        out[i] = (line[i] + previous[i]) & 0xFF
    for i in range(bpp, len(out)):
        left, up, corner = out[i - bpp], previous[i], previous[i - bpp]
        to_left, to_up = abs(up - corner), abs(left - corner)
        to_corner = abs(left + up - corner - corner)
        if to_left <= to_up and to_left <= to_corner:
            predicted = left
        elif to_up <= to_corner:
            predicted = up
        else:
            predicted = corner
        out[i] = (line[i] + predicted) & 0xFF
    return bytes(out)


# -- samples to luma ------------------------------------------------------------------------


def _luma(red: int, green: int, blue: int) -> int:
    """ITU-R BT.601 luma in Pillow's fixed point (its RGB to "L" conversion). The weights
    sum to 65536, so a gray pixel's luma is its value."""
    return (red * 19595 + green * 38470 + blue * 7471 + 0x8000) >> 16


def lumas(red: bytes, green: bytes, blue: bytes) -> bytes:
    """:func:`_luma` of each pixel, all at once: each channel is spread into 32-bit lanes of
    one integer, and the weighted sum is three multiplications of those integers (no lane
    overflows: the largest sum is below 2**24), whose second byte per lane is the luma. A
    Python loop over the pixels was a sixth of a generation's Python time on Workers."""
    count = len(red)
    total = int.from_bytes(_ROUNDING_LANE * count, "big")
    for channel, weight in ((red, 19595), (green, 38470), (blue, 7471)):
        lanes = bytearray(4 * count)
        lanes[3::4] = channel
        total += int.from_bytes(lanes, "big") * weight
    return total.to_bytes(4 * count, "big")[1::4]


_ROUNDING_LANE = (0x8000).to_bytes(4, "big")  # the fixed point's rounding, in one lane


@lru_cache(maxsize=4)
def _unpacked(depth: int) -> tuple[bytes, ...]:
    """For a sub-byte ``depth``, each byte value's samples, most significant first."""
    per_byte, mask = 8 // depth, (1 << depth) - 1
    return tuple(
        bytes((value >> (8 - depth * (k + 1))) & mask for k in range(per_byte))
        for value in range(256)
    )


@lru_cache(maxsize=8)
def _gray_scale(depth: int) -> bytes:
    """Gray sample value -> 0-255, for ``depth`` bits (made once per depth, not per image)."""
    top = (1 << min(depth, 8)) - 1
    return bytes(min(255, value * 255 // top) for value in range(256))


class _LumaRow:
    """Turns one unfiltered scanline into ``width`` luma bytes."""

    def __init__(self, width: int, depth: int, colour: int, palette: bytes) -> None:
        self._width = width
        self._depth = depth
        self._colour = colour
        self._step = _CHANNELS[colour]
        # Sample value -> luma: the palette's entries (unused values map to nothing), or the
        # scaling of a sub-byte gray to 0-255 (0x55 per step at 2 bits, 0x11 at 4, as Pillow).
        self._entries = len(palette) // 3
        if colour == _PALETTE:
            lumas = bytes(_luma(*palette[i : i + 3]) for i in range(0, len(palette), 3))
            self._table = lumas + bytes(256 - len(lumas))
        else:
            self._table = _gray_scale(depth)

    def __call__(self, row: bytes) -> bytes:
        if self._depth < 8:
            unpacked = _unpacked(self._depth)
            samples = b"".join(unpacked[value] for value in row)[: self._width]
        elif self._depth == 16:
            samples = row[::2]  # the high byte of each sample
        else:
            samples = row
        if self._colour == _PALETTE:
            if max(samples) >= self._entries:
                raise PngPixelsError("a palette index past the end of the palette")
            return samples.translate(self._table)
        if self._colour == _GRAY:
            return samples.translate(self._table) if self._depth < 8 else samples
        if self._colour == _GRAY_ALPHA:
            return samples[::2]
        step = self._step  # RGB or RGBA: alpha, when there, ignored
        red, green, blue = samples[0::step], samples[1::step], samples[2::step]
        if red == green == blue:  # gray already (a rendering made gray): its luma is itself
            return red
        return lumas(red, green, blue)
