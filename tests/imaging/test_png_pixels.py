"""The pure-Python decoder of small PNGs (what the Images binding renders for a fingerprint):
every colour type, bit depth and filter type decodes to the grays Pillow decodes, and what
is malformed, interlaced, too large or a zip bomb is refused before it costs anything.

The PNGs are written here, row by row with a chosen filter, so that each filter type is
certainly exercised (an encoder picks its own); Pillow decodes the same bytes as the
reference.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from fluxgate.imaging.png_pixels import MAX_PNG_BYTES, PngPixelsError, gray_pixels, lumas

WIDTH, HEIGHT = 37, 23  # odd, so sub-byte rows end in a partial byte
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def header(width: int, height: int, depth: int, colour: int, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace))


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(row: bytes, previous: bytes, kind: int, bpp: int) -> bytes:
    """``row`` filtered with filter ``kind`` (the encoder's side of the PNG specification)."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = previous[i]
        c = previous[i - bpp] if i >= bpp else 0
        predicted = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
        out.append((x - predicted) & 0xFF)
    return bytes(out)


def encoded(
    rows: list[bytes],
    width: int,
    depth: int,
    colour: int,
    filters: list[int],
    palette: bytes = b"",
    extra: bytes = b"",
) -> bytes:
    """A PNG of ``rows`` (raw scanlines), row ``y`` filtered with ``filters[y % len]``."""
    bpp = max(1, CHANNELS[colour] * depth // 8)
    previous = bytes(len(rows[0]))
    raw = b""
    for y, row in enumerate(rows):
        kind = filters[y % len(filters)]
        raw += bytes([kind]) + filtered(row, previous, kind, bpp)
        previous = row
    return (
        b"\x89PNG\r\n\x1a\n"
        + header(width, len(rows), depth, colour)
        + (chunk(b"PLTE", palette) if palette else b"")
        + extra
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def picture(mode: str) -> Image.Image:
    """Shapes and noise: structure for the filters to predict, and surprises."""
    rng = random.Random(mode)
    image = Image.new("RGB", (WIDTH, HEIGHT), (30, 120, 200))
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randrange(WIDTH), rng.randrange(HEIGHT)
        fill = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        draw.ellipse((x, y, x + rng.randrange(5, 20), y + rng.randrange(5, 20)), fill=fill)
    noise = Image.frombytes("RGB", (WIDTH, HEIGHT), rng.randbytes(WIDTH * HEIGHT * 3))
    return Image.blend(image, noise, 0.3)


def pack(samples: bytes, depth: int) -> bytes:
    """Sub-byte samples packed into bytes, most significant first, the last byte padded."""
    per_byte = 8 // depth
    out = bytearray()
    for start in range(0, len(samples), per_byte):
        value = 0
        group = samples[start : start + per_byte]
        for k in range(per_byte):
            value = (value << depth) | (group[k] if k < len(group) else 0)
        out.append(value)
    return bytes(out)


def scanlines(colour: int, depth: int) -> tuple[list[bytes], bytes]:
    """Raw rows of the test picture in this colour type and bit depth, and the palette."""
    image = picture(f"{colour}/{depth}")
    rng = random.Random(depth)
    palette = b""
    if colour == 3:
        quantised = image.quantize(colors=min(256, 2**depth))
        samples = quantised.tobytes()
        palette = bytes(quantised.getpalette() or [])[: 3 * (max(samples) + 1)]
    else:
        mode = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}[colour]
        converted = image.convert(mode)
        if "A" in mode:  # alpha that varies, which the grays must ignore
            alpha = Image.frombytes("L", image.size, rng.randbytes(WIDTH * HEIGHT))
            converted.putalpha(alpha)
        samples = converted.tobytes()
        if colour == 0 and depth < 8:
            samples = bytes(value >> (8 - depth) for value in samples)
    per_row = WIDTH * CHANNELS[colour]
    rows = []
    for y in range(HEIGHT):
        row = samples[y * per_row : (y + 1) * per_row]
        if depth < 8:
            row = pack(row, depth)
        elif depth == 16:  # a high byte as the 8-bit picture, a low byte of noise
            row = b"".join(bytes([value, rng.randrange(256)]) for value in row)
        rows.append(row)
    return rows, palette


def pillow_grays(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if image.mode == "I;16":  # 16-bit gray: Pillow keeps every bit, little-endian
            return image.tobytes()[1::2]
        return image.convert("L").tobytes()


KINDS = [
    (0, 1),
    (0, 2),
    (0, 4),
    (0, 8),
    (0, 16),
    (2, 8),
    (2, 16),
    (3, 1),
    (3, 2),
    (3, 4),
    (3, 8),
    (4, 8),
    (4, 16),
    (6, 8),
    (6, 16),
]
FILTERS = {
    "none": [0],
    "sub": [1],
    "up": [2],
    "average": [3],
    "paeth": [4],
    "mixed": [0, 1, 2, 3, 4],
}


@pytest.mark.parametrize("filters", list(FILTERS))
@pytest.mark.parametrize(("colour", "depth"), KINDS)
def test_decodes_to_the_grays_pillow_decodes(colour, depth, filters):
    rows, palette = scanlines(colour, depth)
    data = encoded(rows, WIDTH, depth, colour, FILTERS[filters], palette)
    assert gray_pixels(data) == (WIDTH, HEIGHT, pillow_grays(data))


def test_a_pillow_rendering_decodes_to_pillows_own_grays():
    """What the local runtime's renderer computes, and what the Worker decodes from the
    Images binding's PNG of the same rendering, agree exactly."""
    image = picture("rendering").resize((64, 48))
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    assert gray_pixels(out.getvalue()) == (64, 48, image.convert("L").tobytes())


def test_ancillary_chunks_are_skipped_and_alpha_ignored():
    rows, _ = scanlines(6, 8)
    text = chunk(b"tEXt", b"Comment\x00hello") + chunk(b"abcD", b"private")
    with_chunks = encoded(rows, WIDTH, 8, 6, [4], extra=text)
    opaque = [bytes(v if i % 4 != 3 else 255 for i, v in enumerate(row)) for row in rows]
    assert gray_pixels(with_chunks) == gray_pixels(encoded(opaque, WIDTH, 8, 6, [0]))


def test_idat_may_be_split_across_chunks():
    rows, _ = scanlines(2, 8)
    whole = encoded(rows, WIDTH, 8, 2, [1])
    start = whole.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", whole[start : start + 4])
    body = whole[start + 8 : start + 8 + length]
    split = whole[:start] + chunk(b"IDAT", body[:10]) + chunk(b"IDAT", body[10:])
    split += whole[start + 12 + length :]
    assert gray_pixels(split) == gray_pixels(whole)


# -- refused --------------------------------------------------------------------------------


def small(depth: int = 8, colour: int = 2) -> bytes:
    rows, palette = scanlines(colour, depth)
    return encoded(rows, WIDTH, depth, colour, [0], palette)


def with_header(data: bytes, new_header: bytes) -> bytes:
    return data[:8] + new_header + data[8 + 25 :]


def refused(data: bytes, max_side: int = 256) -> str:
    with pytest.raises(PngPixelsError) as exc:
        gray_pixels(data, max_side)
    return str(exc.value)


def test_what_is_refused_is_a_value_error():
    assert issubclass(PngPixelsError, ValueError)


def test_not_a_png_is_refused():
    assert "not a PNG" in refused(b"GIF89a" + bytes(100))
    assert "not a PNG" in refused(b"")


def test_a_truncated_png_is_refused():
    data = small()
    for cut in (20, 40, len(data) - 20, len(data) - 1):
        refused(data[:cut])


def test_a_corrupted_chunk_is_refused_by_its_crc():
    data = bytearray(small())
    data[data.index(b"IDAT") + 10] ^= 0xFF
    assert "CRC" in refused(bytes(data))


def test_an_interlaced_png_is_refused():
    data = with_header(small(), header(WIDTH, HEIGHT, 8, 2, interlace=1))
    assert "interlaced" in refused(data)


def test_a_png_larger_than_allowed_is_refused_before_inflating():
    data = with_header(small(), header(257, 10, 8, 2))
    assert "257x10" in refused(data)
    assert "37x23" in refused(small(), max_side=32)
    assert "bytes" in refused(small() + bytes(MAX_PNG_BYTES))


def test_a_zip_bomb_is_refused_after_inflating_no_more_than_the_picture():
    """A 256x256 header over a stream of 200 MB of zeros (compressed to about 200 KB)."""
    bomb = zlib.compress(bytes(200 * 1024 * 1024), 9)
    assert len(bomb) < MAX_PNG_BYTES
    data = b"\x89PNG\r\n\x1a\n" + header(256, 256, 8, 2) + chunk(b"IDAT", bomb)
    data += chunk(b"IEND", b"")
    assert "inflates to" in refused(data)


def test_image_data_shorter_than_the_picture_is_refused():
    rows, _ = scanlines(2, 8)
    data = encoded(rows[:-1], WIDTH, 8, 2, [0])
    data = with_header(data, header(WIDTH, HEIGHT, 8, 2))
    assert "inflates to" in refused(data)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: with_header(d, header(WIDTH, HEIGHT, 4, 2)), "bit depth 4 with colour type 2"),
        (lambda d: with_header(d, header(WIDTH, HEIGHT, 8, 5)), "colour type 5"),
        (lambda d: d[:33] + chunk(b"ABCD", b"?") + d[33:], "unknown critical chunk"),
        (lambda d: d[:8] + d[33:], "does not start with IHDR"),
        (lambda d: d[: d.index(b"IEND") - 4], "ends before"),
        (lambda d: d[:33] + chunk(b"IEND", b""), "no image data"),
    ],
)
def test_a_malformed_png_is_refused(mangle, reason):
    assert reason in refused(mangle(small()))


def test_an_unknown_filter_type_is_refused():
    rows, _ = scanlines(0, 8)
    raw = b"".join(bytes([5]) + row for row in rows)
    data = b"\x89PNG\r\n\x1a\n" + header(WIDTH, HEIGHT, 8, 0) + chunk(b"IDAT", zlib.compress(raw))
    assert "filter type 5" in refused(data + chunk(b"IEND", b""))


def test_a_palette_png_needs_its_palette_and_indices_within_it():
    rows = [bytes([0, 1, 2] * WIDTH)[:WIDTH] for _ in range(HEIGHT)]
    two = b"\x00\x00\x00\xff\xff\xff"
    assert "palette index" in refused(encoded(rows, WIDTH, 8, 3, [0], palette=two))
    assert "PLTE" in refused(encoded(rows, WIDTH, 8, 3, [0]))
    three = two + b"\x80\x80\x80"
    assert gray_pixels(encoded(rows, WIDTH, 8, 3, [0], palette=three))[2][:3] == b"\x00\xff\x80"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 255)] * 3), max_size=300))
def test_the_luma_of_many_pixels_at_once_is_each_pixels_luma(pixels):
    """The whole-row luma (integer lanes, no per-pixel loop) is Pillow's, pixel by pixel."""
    red, green, blue = (
        (bytes(channel) for channel in zip(*pixels, strict=True)) if pixels else (b"", b"", b"")
    )
    expected = bytes((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16 for r, g, b in pixels)
    assert lumas(red, green, blue) == expected
