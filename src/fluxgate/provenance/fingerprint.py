"""The perceptual fingerprint of a generated image: 64 bits that survive re-encoding, resizing,
metadata stripping and small crops, and differ between unrelated pictures.

What is hashed. A runtime renders the image small and gray (:class:`GrayRenderer`: the
Cloudflare Images binding on Workers, Pillow locally) into a :class:`GrayGrid`
:data:`RENDER_SIDE` pixels wide (:func:`rendering_width`). The fingerprint is a DCT hash
(pHash) of the grid's *central region*, the image without a border of :data:`MAX_CROP`
(5 %) on each side:

1. the region is area-resampled (box filter) to :data:`GRID` x :data:`GRID` (32x32, the
   aspect ratio squashed away);
2. its 2-D DCT-II is taken, and the 64 lowest frequencies after the DC term, in JPEG's
   zigzag order, kept (the DC term is the mean brightness: no shape in it);
3. each becomes one bit: 1 when above the median of the 64 (so a fingerprint has 32 ones,
   and brightness or contrast changes do not move it).

The bits are stored interleaved (zigzag coefficient ``j`` is bit ``j // 4``, from the most
significant, of band ``j % 4``), so that each 16-bit band of :func:`bands` samples low and
high frequencies alike and the bands' values spread evenly, which keeps the index's band
lookups selective.

Why the central region. A DCT hash of a whole picture moves with any crop: 5 % off one
corner shifts every low frequency's phase, and the plain hash of the images measured below
moved by up to 24 bits, as much as between two unrelated images. A crop of at most 5 % per
side never removes any of the central region, it only moves it inside the picture. So the
fingerprint stored is the central region's, and an image being *verified* is hashed once for
each crop it may have had (:data:`CROP_HYPOTHESES`, :func:`probes`): under the right one the
region is found again where it is, exactly, and under a near one nearly. An image cropped by
less, or by more on one side than on another, falls between two hypotheses (measured below).
Storing costs one hash; verifying costs :data:`PROBES` of them and a lookup of each.

Flat pictures (a black frame, a solid colour) have no shape to hash: the median of their
coefficients is noise, and every flat image would match every other. :func:`perceptual_hash`
answers ``None`` for a central region whose strongest low frequency is weaker than
:data:`MIN_CONTRAST` gray levels; such an image can be found by its content hash only.

Measurements (2026-12-07; tests/provenance/test_fingerprint.py checks the promised ones on
a smaller set). 246 images: 100 placeholder renders
(:func:`fluxgate.local.placeholder.render_png`, eight sizes from 256x256 to 1920x1080 and
1920x256), 60 Pillow-drawn scenes of rectangles, ellipses, polygons and thick lines (a third
of them blurred), 60 photo-like multi-scale colour noises, 2 photographs and 24 screenshots
and diagrams, each rendered by Pillow as the local runtime does (Lanczos to
:func:`rendering_width`, BT.601 luma). The distance of a transformed
image (its nearest probe) to its original's fingerprint, maximum / mean:

=====================================================  ==========
JPEG quality 70                                        4 / 0.34
resized to half (bicubic)                              2 / 0.17
resized to half (Lanczos), then JPEG quality 70        4 / 0.41
WebP quality 80                                        2 / 0.34
metadata stripped (re-saved, pixels unchanged)         0 / 0
5 % off one side (each of the four)                    4 / 0.45
5 % off one corner (each of the four)                  4 / 0.58
2.5 % off each edge                                    4 / 0.54
5 % off a corner, then halved, then JPEG quality 70    4 / 0.76
3 % off one side (between two hypotheses)              8 / 2.7
2 % off the left and 4 % off the top                   8 / 3.2
4 % off left and right (more than the 5 % promised)    8 / 3.9
=====================================================  ==========

Unrelated images, 60,270 ordered pairs (each image's probes against the other's
fingerprint, the nearest counted): minimum 10, 1st percentile 20, mean 28.5 (without the
probes: minimum 12, mean 32). The two pairs at 10 are one photograph in two colour
treatments and two screenshots of the same documentation page layout, the same picture to
a viewer too; the nearest truly unrelated pairs are at 12 (a bar chart and a noise
texture; two noise textures). Hence :data:`THRESHOLD` = 8: every transformation measured is
within it, every truly unrelated pair at least 4 bits beyond it (the near-duplicates 2),
and it is within :data:`MAX_THRESHOLD`, the most the index's exact search allows.
(Distances between two fingerprints are even, each having 32 ones: 8 and 9 accept the same
pairs.)

At scale. Were fingerprints uniformly random balanced 64-bit strings, two would be within 8
bits with probability ``sum(C(32, k)**2 for k <= 4) / C(64, 32)``, about 7e-10; with ten
probes, about 7e-9 per stored image, so a query against a million stored images would meet
a chance match about once in 140 queries. Real pictures cluster more than random strings:
a perceptual match says "this looks like generation X", at the distance it reports; the
content hash and the signed manifest are the proofs.

Exact search (the index, :mod:`fluxgate.provenance.index`). Split a fingerprint into
:data:`BANDS` = 4 bands of 16 bits. If ``hamming(a, b) <= t``, the ``t`` differing bits fall
into 4 bands, so some band holds at most ``floor(t / 4)`` of them: were every band to hold
``floor(t / 4) + 1`` or more, there would be at least ``4 * (floor(t / 4) + 1) > t``
differences. So every fingerprint within ``t`` of a query has, in at least one band, a value
within Hamming radius ``r = floor(t / 4)`` (:func:`band_radius`) of the query's value in
that band. Looking up, in each band, every value within ``r`` of the query's
(:func:`band_neighbours`: 1 + 16 + 120 = 137 values for ``r = 2``) therefore finds every
match, no false negatives; the candidates are then checked on all 64 bits, no false
positives. The lookup is bounded: at most 4 x 137 exact values, each an index probe, for
any ``t`` up to :data:`MAX_THRESHOLD` = 11 (the largest with ``r = 2``; ``r = 3`` would be
697 values a band).

CPU. Pure Python (numpy is not in the Worker): the fingerprint of a 64x48 grid (a 1024x768
image) takes about 0.75 ms under CPython 3.11, of a 64x64 grid 0.95 ms (a few times that in
Pyodide), most of it the 352 dot products of the vertical transform; :func:`probes` ten
times that, once per verification.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from operator import mul
from typing import Protocol

from ..imaging.image_bytes import ImageBytes

__all__ = [
    "BANDS",
    "BAND_BITS",
    "CROP_HYPOTHESES",
    "MAX_GRID_SIDE",
    "MAX_THRESHOLD",
    "RENDER_SIDE",
    "THRESHOLD",
    "GrayGrid",
    "GrayRenderer",
    "band_neighbours",
    "band_radius",
    "bands",
    "from_bands",
    "hamming",
    "perceptual_hash",
    "probes",
    "rendering_width",
]

# -- the rendering ------------------------------------------------------------------------

RENDER_SIDE = 64  # the rendering's width: a 1024x768 image renders as 64x48
MAX_GRID_SIDE = 256  # a GrayGrid's largest side: what png_pixels decodes at most
GRID = 32  # the side of the square the central region is resampled to


@dataclass(frozen=True)
class GrayGrid:
    """A small grayscale picture: ``pixels`` row-major, one byte each (0 black, 255 white),
    ITU-R BT.601 luma of the image as rendered."""

    width: int
    height: int
    pixels: bytes

    def __post_init__(self) -> None:
        if not (0 < self.width <= MAX_GRID_SIDE and 0 < self.height <= MAX_GRID_SIDE):
            raise ValueError(f"a gray grid of {self.width}x{self.height} is out of range")
        if len(self.pixels) != self.width * self.height:
            raise ValueError(
                f"{len(self.pixels)} pixels for a {self.width}x{self.height} gray grid"
            )


class GrayRenderer(Protocol):
    """What renders an image for its fingerprint: the Images binding on Workers
    (``WorkersImageTransformer``), Pillow locally (``PillowTransformer``)."""

    async def gray_grid(self, image: ImageBytes) -> GrayGrid:
        """``image`` scaled down to :func:`rendering_width` (its aspect ratio kept), as
        gray. Raises :class:`~fluxgate.delivery.variants.TransformError` for an image it
        cannot decode."""
        ...


def rendering_width(width: int, height: int) -> int:
    """The width to render a ``width`` x ``height`` image at: :data:`RENDER_SIDE`, or wider
    for a panorama, so that it keeps at least :data:`GRID` rows to hash; never a side past
    :data:`MAX_GRID_SIDE`, never wider than the image (renderings only scale down)."""
    if width <= 0 or height <= 0:
        return RENDER_SIDE
    wanted = max(RENDER_SIDE, math.ceil(GRID * width / height))
    tall_enough = (MAX_GRID_SIDE * width) // height  # keeps a tall image's height in bounds
    return max(1, min(wanted, MAX_GRID_SIDE, tall_enough, width))


# -- the hash -----------------------------------------------------------------------------

MAX_CROP = 0.05  # the border left out of the fingerprint: the crop tolerated per side
FINGERPRINT_BITS = 64
BANDS = 4
BAND_BITS = FINGERPRINT_BITS // BANDS
BAND_MASK = (1 << BAND_BITS) - 1
# The strongest low frequency of a picture with a shape in it (gray levels of amplitude).
MIN_CONTRAST = 2.0

# JPEG's zigzag over the DCT's (row, column) frequencies: diagonal by diagonal, odd ones
# downwards, even ones upwards. The 64 after the DC term reach the tenth diagonal.
_ZIGZAG = sorted(
    ((u, v) for u in range(11) for v in range(11) if u + v <= 10),
    key=lambda uv: (uv[0] + uv[1], uv[0] if (uv[0] + uv[1]) % 2 else uv[1]),
)[1 : FINGERPRINT_BITS + 1]
_FREQUENCIES = 1 + max(max(u, v) for u, v in _ZIGZAG)
_BASIS = tuple(
    tuple(math.cos(math.pi * (2 * x + 1) * k / (2 * GRID)) for x in range(GRID))
    for k in range(_FREQUENCIES)
)
# A cosine of amplitude 1 at frequencies (u, v) > 0 gives a coefficient of GRID**2 / 4.
_UNIT = GRID * GRID / 4

# The crops a verified image may have had, as the fraction of the original missing on each
# side (left, top, right, bottom): none, 5 % off one side, 5 % off one corner, 2.5 % off
# each edge. The first is the fingerprint itself.
_F, _H = MAX_CROP, MAX_CROP / 2
CROP_HYPOTHESES: tuple[tuple[float, float, float, float], ...] = (
    (0, 0, 0, 0),
    (_F, 0, 0, 0),
    (0, _F, 0, 0),
    (0, 0, _F, 0),
    (0, 0, 0, _F),
    (_F, _F, 0, 0),
    (0, _F, _F, 0),
    (0, 0, _F, _F),
    (_F, 0, 0, _F),
    (_H, _H, _H, _H),
)
PROBES = len(CROP_HYPOTHESES)

_Weights = tuple[int, tuple[float, ...]]  # (first source pixel, its weights onward)


@lru_cache(maxsize=64)
def _cells(pixels: int, start: float, end: float) -> tuple[_Weights, ...]:
    """Box weights resampling ``[start, end)`` (fractions of an axis of ``pixels``) to
    :data:`GRID` cells: each cell the mean of the pixels it covers, partial ones in part.
    Cached: every image of a size renders to the same grid."""
    cells: list[_Weights] = []
    step = (end - start) * pixels / GRID
    for cell in range(GRID):
        lo = max(0.0, start * pixels + cell * step)
        hi = min(float(pixels), lo + step)
        first = min(int(lo), pixels - 1)
        weights = []
        pixel = first
        while pixel < hi or pixel == first:  # at least one pixel, however narrow the cell
            weights.append(max(0.0, min(hi, pixel + 1) - max(lo, pixel)))
            pixel += 1
        total = sum(weights) or 1.0
        cells.append((first, tuple(w / total for w in weights)))
    return tuple(cells)


@lru_cache(maxsize=64)
def _projected(pixels: int, start: float, end: float) -> tuple[int, tuple[tuple[float, ...], ...]]:
    """The DCT's cosines over the GRID cells of ``[start, end)``, carried back through the
    cells' box weights onto the source pixels: the first pixel, and for each frequency one
    weight per pixel from there. A column of source pixels dotted with one of them is the
    resampled column's DCT coefficient, without resampling it."""
    cells = _cells(pixels, start, end)
    first = cells[0][0]
    span = cells[-1][0] + len(cells[-1][1]) - first
    projected = []
    for cosines in _BASIS:
        weights = [0.0] * span
        for cosine, (at, cell) in zip(cosines, cells, strict=True):
            for offset, weight in enumerate(cell, start=at - first):
                weights[offset] += cosine * weight
        projected.append(tuple(weights))
    return first, tuple(projected)


def _coefficients(grid: GrayGrid, crop: tuple[float, float, float, float]) -> list[float]:
    """The 64 zigzag coefficients (unnormalised DCT-II) of the original's central region,
    found in ``grid`` as if ``crop`` (the fractions of the original missing on each side)
    had been cut off it, resampled to GRID x GRID.

    Each of the GRID columns of the region is the box-weighted sum of a few source pixel
    columns (sliced out of the bytes at C speed), then dotted with the vertical cosines
    carried back onto the source rows (:func:`_projected`); the horizontal transform of
    those per-column coefficients gives the 64 wanted."""
    left, top, right, bottom = crop
    across, down = 1 - left - right, 1 - top - bottom
    columns = _cells(grid.width, (MAX_CROP - left) / across, (1 - MAX_CROP - left) / across)
    first_row, vertical = _projected(
        grid.height, (MAX_CROP - top) / down, (1 - MAX_CROP - top) / down
    )
    width, pixels = grid.width, grid.pixels
    start, stop = first_row * width, (first_row + len(vertical[0])) * width
    by_column: list[list[float]] = []
    for first, weights in columns:
        cell: list[float] = [0.0] * len(vertical[0])
        for x, weight in enumerate(weights, start=first):
            cell = [
                c + weight * p for c, p in zip(cell, pixels[start + x : stop : width], strict=True)
            ]
        by_column.append([sum(map(mul, cell, cosines)) for cosines in vertical])
    by_row_frequency = list(zip(*by_column, strict=True))  # [u][column]
    return [sum(map(mul, by_row_frequency[u], _BASIS[v])) for u, v in _ZIGZAG]


def _hash(coefficients: list[float]) -> int | None:
    if max(map(abs, coefficients)) < MIN_CONTRAST * _UNIT:
        return None
    ranked = sorted(coefficients)
    half = len(ranked) // 2
    median = (ranked[half - 1] + ranked[half]) / 2
    value = 0
    for j, coefficient in enumerate(coefficients):
        if coefficient > median:
            value |= 1 << (FINGERPRINT_BITS - 1 - ((j % BANDS) * BAND_BITS + j // BANDS))
    return value


def perceptual_hash(grid: GrayGrid) -> int | None:
    """The 64-bit fingerprint stored for a generated image (its central region's hash), or
    ``None`` for a picture too flat to have one."""
    return _hash(_coefficients(grid, CROP_HYPOTHESES[0]))


def probes(grid: GrayGrid) -> tuple[int, ...]:
    """The fingerprints an image being verified may match: its central region under each
    crop of :data:`CROP_HYPOTHESES` (the plain fingerprint first). Empty for a flat picture;
    a hypothesis that finds a flat region gives no probe."""
    found = (_hash(_coefficients(grid, crop)) for crop in CROP_HYPOTHESES)
    return tuple(dict.fromkeys(probe for probe in found if probe is not None))


def hamming(a: int, b: int) -> int:
    """How many of the 64 bits differ."""
    return (a ^ b).bit_count()


# -- the exact search's bands (see the module's docstring) ---------------------------------

MAX_THRESHOLD = BANDS * 3 - 1  # 11: the radius stays at most 2 (137 values a band)
THRESHOLD = 8


def bands(value: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands of a fingerprint, most significant first."""
    if not 0 <= value < 1 << FINGERPRINT_BITS:
        raise ValueError("a fingerprint is an unsigned 64-bit integer")
    return (
        (value >> 48) & BAND_MASK,
        (value >> 32) & BAND_MASK,
        (value >> 16) & BAND_MASK,
        value & BAND_MASK,
    )


def from_bands(parts: Sequence[int]) -> int:
    """The fingerprint whose bands are ``parts``."""
    if len(parts) != BANDS or not all(0 <= part <= BAND_MASK for part in parts):
        raise ValueError("a fingerprint has four 16-bit bands")
    value = 0
    for part in parts:
        value = (value << BAND_BITS) | part
    return value


def band_radius(threshold: int) -> int:
    """The radius each band is searched within for matches up to ``threshold`` bits apart."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise ValueError(f"a match threshold is between 0 and {MAX_THRESHOLD} bits")
    return threshold // BANDS


def band_neighbours(value: int, radius: int) -> list[int]:
    """Every 16-bit value within Hamming ``radius`` of ``value``, ``value`` first, then by
    distance (``1 + 16 + 120`` of them for a radius of 2)."""
    found = [value]
    for distance in range(1, radius + 1):
        for positions in combinations(range(BAND_BITS), distance):
            flipped = value
            for position in positions:
                flipped ^= 1 << position
            found.append(flipped)
    return found
