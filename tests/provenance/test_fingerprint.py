"""The perceptual fingerprint: what it survives, what it tells apart, and the band split that
makes its index search exact.

Every picture is rendered as the local runtime renders it (``render_gray``: Pillow, Lanczos
to the rendering width, BT.601 luma), the originals' fingerprints as stored, the changed
images' probes as a verification computes them. The originals are the placeholder model's
pictures (what the local runtime generates) and Pillow-drawn scenes; the unrelated ones are
other placeholder pictures and other scenes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import subprocess
from collections.abc import Callable
from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from fluxgate.local.pillow_transform import render_gray
from fluxgate.local.placeholder import render_png
from fluxgate.provenance.fingerprint import (
    BAND_BITS,
    BANDS,
    MAX_THRESHOLD,
    THRESHOLD,
    GrayGrid,
    band_neighbours,
    band_radius,
    bands,
    from_bands,
    hamming,
    perceptual_hash,
    probes,
    rendering_width,
)

from ..support.stack_process import ROOT, node


def grid_of(data: bytes) -> GrayGrid:
    return GrayGrid(*render_gray(data))


def stored(data: bytes) -> int:
    fingerprint = perceptual_hash(grid_of(data))
    assert fingerprint is not None
    return fingerprint


def distance(original: int, changed: bytes) -> int:
    """How far a changed image is from an original's fingerprint: its nearest probe."""
    return min(hamming(original, probe) for probe in probes(grid_of(changed)))


def png(image: Image.Image, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **options)
    return out.getvalue()


def opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def placeholder(seed: str, size: tuple[int, int]) -> bytes:
    return render_png(*size, hashlib.sha256(seed.encode()).digest())


def scene(seed: str, size: tuple[int, int] = (768, 512)) -> bytes:
    """A picture no model here drew: shapes, lines and stripes on a colour, some blurred."""
    rng = random.Random(seed)
    width, height = size

    def colour() -> tuple[int, int, int]:
        return (rng.randrange(256), rng.randrange(256), rng.randrange(256))

    image = Image.new("RGB", size, colour())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(6, 20)):
        x, y = rng.randrange(width), rng.randrange(height)
        box = (x, y, x + rng.randrange(30, width // 2), y + rng.randrange(30, height // 2))
        kind = rng.randrange(4)
        if kind == 0:
            draw.rectangle(box, fill=colour())
        elif kind == 1:
            draw.ellipse(box, fill=colour())
        elif kind == 2:
            corners = [(rng.randrange(width), rng.randrange(height)) for _ in range(4)]
            draw.polygon(corners, fill=colour())
        else:
            points = [(rng.randrange(width), rng.randrange(height)) for _ in range(4)]
            draw.line(points, fill=colour(), width=rng.randint(3, 30))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1, 5)))
    return png(image)


SIZES = [(1024, 768), (768, 1024), (512, 512), (1920, 1080), (256, 256), (1920, 256)]
# What the placeholder model generates at the sizes served, and pictures drawn elsewhere.
ORIGINALS = {
    **{f"placeholder {size[0]}x{size[1]} #{n}": ("p", n, size) for n, size in enumerate(SIZES)},
    **{f"placeholder 1024x768 #{n}": ("p", n, (1024, 768)) for n in range(6, 10)},
    **{f"scene #{n}": ("s", n, (768, 512)) for n in range(6)},
}


@cache
def original(name: str) -> bytes:
    kind, number, size = ORIGINALS[name]
    return placeholder(f"original {number}", size) if kind == "p" else scene(f"original {number}")


def crop(left: float, top: float, right: float, bottom: float) -> Callable[[bytes], bytes]:
    """Cut away these fractions of the width and height from each side."""

    def cut(data: bytes) -> bytes:
        image = opened(data)
        w, h = image.size
        box = (round(w * left), round(h * top), w - round(w * right), h - round(h * bottom))
        return png(image.crop(box))

    return cut


def as_jpeg_70(data: bytes) -> bytes:
    out = io.BytesIO()
    opened(data).save(out, "JPEG", quality=70)
    return out.getvalue()


def at_half_size(data: bytes) -> bytes:
    image = opened(data)
    return png(image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS))


def stripped(data: bytes) -> bytes:
    """The same pixels without the metadata the original carried."""
    return png(opened(data))


def with_metadata(data: bytes) -> bytes:
    """The original as stored: text chunks (an XMP packet among them) beside its pixels."""
    info = PngImagePlugin.PngInfo()
    info.add_text("XML:com.adobe.xmp", "<x:xmpmeta>trainedAlgorithmicMedia</x:xmpmeta>")
    info.add_text("Description", "made here")
    return png(opened(data), pnginfo=info)


F, H = 0.05, 0.025
CHANGES: dict[str, Callable[[bytes], bytes]] = {
    "JPEG quality 70": as_jpeg_70,
    "resized to half": at_half_size,
    "metadata stripped": lambda data: stripped(with_metadata(data)),
    "5 % off the left": crop(F, 0, 0, 0),
    "5 % off the top": crop(0, F, 0, 0),
    "5 % off the right": crop(0, 0, F, 0),
    "5 % off the bottom": crop(0, 0, 0, F),
    "5 % off the top left corner": crop(F, F, 0, 0),
    "5 % off the top right corner": crop(0, F, F, 0),
    "5 % off the bottom right corner": crop(0, 0, F, F),
    "5 % off the bottom left corner": crop(F, 0, 0, F),
    "2.5 % off each edge": crop(H, H, H, H),
    "5 % off a corner, halved, then JPEG 70": lambda data: as_jpeg_70(
        at_half_size(crop(F, 0, 0, F)(data))
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_changed_image_stays_within_the_threshold_of_its_original(change):
    far = {
        name: distance(stored(original(name)), CHANGES[change](original(name)))
        for name in ORIGINALS
    }
    assert max(far.values()) <= THRESHOLD, far


def test_metadata_alone_changes_nothing():
    data = original("placeholder 1024x768 #0")
    assert perceptual_hash(grid_of(stripped(with_metadata(data)))) == stored(data)


UNRELATED = [placeholder(f"unrelated {n}", SIZES[n % len(SIZES)]) for n in range(12)] + [
    scene(f"unrelated {n}") for n in range(12)
]


@cache
def unrelated() -> list[tuple[int, tuple[int, ...]]]:
    """Each unrelated image's fingerprint and probes."""
    grids = [grid_of(data) for data in UNRELATED]
    return [(stored(data), probes(grid)) for data, grid in zip(UNRELATED, grids, strict=True)]


def nearest(fingerprint: int, found: tuple[int, ...]) -> int:
    return min(hamming(fingerprint, probe) for probe in found)


def test_unrelated_images_are_never_within_the_threshold_of_one_another():
    near = [
        (i, j, d)
        for i, (_, found) in enumerate(unrelated())
        for j, (fingerprint, _) in enumerate(unrelated())
        if i != j and (d := nearest(fingerprint, found)) <= THRESHOLD
    ]
    assert near == []


def test_unrelated_images_are_never_within_the_threshold_of_the_originals():
    near = [
        (name, j, d)
        for name in ORIGINALS
        for j, (_, found) in enumerate(unrelated())
        if (d := nearest(stored(original(name)), found)) <= THRESHOLD
    ]
    assert near == []


def test_distinct_requests_give_the_placeholder_unrelated_pictures_and_one_request_the_same():
    fingerprints = [stored(placeholder(f"prompt {n}", (1024, 768))) for n in range(12)]
    closest = min(hamming(a, b) for i, a in enumerate(fingerprints) for b in fingerprints[i + 1 :])
    assert closest > THRESHOLD
    assert placeholder("prompt 1", (1024, 768)) == placeholder("prompt 1", (1024, 768))


STANDIN = """
import { encodePng, noisyPng } from "./worker/local/png.mjs";
const b64 = (png) => png.toString("base64");
const flat = [0, 1, 2, 3, 4, 5].map((n) => b64(encodePng(1024, 768, [7, 0, 128], `prompt ${n}`)));
const again = b64(encodePng(1024, 768, [7, 0, 128], "prompt 0"));
const noisy = [b64(noisyPng(1024, 768, "prompt 0")), b64(noisyPng(1024, 768, "prompt 0"))];
console.log(JSON.stringify({ flat, again, noisy }));
"""


@pytest.mark.skipif(node() is None, reason="node is not installed")
def test_the_workers_ai_standin_draws_unrelated_pictures_too():
    """worker/local/png.mjs, which answers for the model on workerd: distinct requests give
    unrelated fingerprints, one request the same bytes, and its realistic (noisy) images
    keep their picture's fingerprint whatever the noise."""
    done = subprocess.run(
        [node() or "node", "--input-type=module", "-e", STANDIN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    drawn = json.loads(done.stdout)
    flat = [base64.b64decode(text) for text in drawn["flat"]]
    assert base64.b64decode(drawn["again"]) == flat[0]
    fingerprints = [stored(data) for data in flat]
    closest = min(hamming(a, b) for i, a in enumerate(fingerprints) for b in fingerprints[i + 1 :])
    assert closest > THRESHOLD
    noisy = [base64.b64decode(text) for text in drawn["noisy"]]
    assert noisy[0] != noisy[1] and len(noisy[0]) > 1_000_000
    assert hamming(stored(noisy[0]), stored(noisy[1])) <= THRESHOLD


def test_a_flat_picture_has_no_fingerprint():
    """A solid colour, or one with a faint noise, would otherwise match every other."""
    rng = random.Random(0)
    faint = Image.frombytes(
        "L", (256, 256), bytes(128 + rng.randrange(-2, 3) for _ in range(65536))
    )
    for picture in (Image.new("RGB", (512, 384), (20, 90, 200)), faint):
        grid = grid_of(png(picture))
        assert perceptual_hash(grid) is None
        assert probes(grid) == ()


def test_a_fingerprint_has_as_many_ones_as_zeros():
    """Each bit says whether a frequency is above the median of the 64."""
    for name in ORIGINALS:
        assert stored(original(name)).bit_count() == 32


def test_the_first_probe_is_the_fingerprint_and_there_is_one_per_crop_hypothesis():
    grid = grid_of(original("scene #0"))
    found = probes(grid)
    assert found[0] == perceptual_hash(grid)
    assert 2 <= len(found) <= 10


@pytest.mark.parametrize(
    ("size", "rendered"),
    [
        ((1024, 768), (64, 48)),
        ((768, 1024), (64, 85)),
        ((1920, 256), (240, 32)),  # a panorama keeps 32 rows
        ((256, 1920), (34, 255)),  # a tall image stays within 256 rows
        ((40, 30), (40, 30)),  # never scaled up
        ((5000, 10), (256, 1)),
    ],
)
def test_the_rendering_width_keeps_a_grid_within_bounds(size, rendered):
    width = rendering_width(*size)
    assert (width, max(1, round(size[1] * width / size[0]))) == rendered


def test_a_gray_grid_is_checked():
    with pytest.raises(ValueError):
        GrayGrid(2, 2, b"\x00" * 3)
    with pytest.raises(ValueError):
        GrayGrid(257, 1, b"\x00" * 257)
    with pytest.raises(ValueError):
        GrayGrid(0, 1, b"")


# -- the bands --------------------------------------------------------------------------


fingerprints = st.integers(min_value=0, max_value=2**64 - 1)


@given(fingerprints)
def test_bands_split_and_join_a_fingerprint(value):
    parts = bands(value)
    assert len(parts) == BANDS and all(0 <= part < 2**BAND_BITS for part in parts)
    assert from_bands(parts) == value


def test_out_of_range_values_are_refused():
    for value in (-1, 2**64):
        with pytest.raises(ValueError):
            bands(value)
    with pytest.raises(ValueError):
        from_bands((0, 0, 0, 2**16))
    with pytest.raises(ValueError):
        band_radius(MAX_THRESHOLD + 1)


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_band_neighbours_are_exactly_the_values_within_the_radius(radius):
    for value in (0, 0xFFFF, 0xA5C3):
        near = band_neighbours(value, radius)
        expected = {v for v in range(2**BAND_BITS) if (v ^ value).bit_count() <= radius}
        assert len(near) == len(set(near)) == len(expected)
        assert set(near) == expected
        assert near[0] == value
    assert len(band_neighbours(0, 2)) == 1 + 16 + 120


@st.composite
def near_pairs(draw: st.DrawFn) -> tuple[int, int, int]:
    """A fingerprint, one at most ``threshold`` bits from it, and the threshold."""
    threshold = draw(st.integers(min_value=0, max_value=MAX_THRESHOLD))
    a = draw(fingerprints)
    flipped = draw(st.sets(st.integers(min_value=0, max_value=63), max_size=threshold))
    b = a
    for bit in flipped:
        b ^= 1 << bit
    return a, b, threshold


@given(near_pairs())
def test_every_match_shares_a_band_within_the_radius(pair):
    """The pigeonhole claim the index's exact search rests on, against brute force: two
    fingerprints within ``t`` bits have a band whose values are within ``t // 4`` bits, so
    looking up each band's neighbours finds every match."""
    a, b, threshold = pair
    assert hamming(a, b) <= threshold
    radius = band_radius(threshold)
    found = [
        band
        for band, (x, y) in enumerate(zip(bands(a), bands(b), strict=True))
        if y in band_neighbours(x, radius)
    ]
    assert found
    assert min((x ^ y).bit_count() for x, y in zip(bands(a), bands(b), strict=True)) <= radius


@given(fingerprints, fingerprints)
def test_hamming_distance_counts_the_differing_bits(a, b):
    assert hamming(a, b) == sum((a >> i) & 1 != (b >> i) & 1 for i in range(64))
