"""Images this deployment never generated, and what people do to images it did.

The unrelated pictures are varied on purpose (shapes, stripes, gradients, noise, text on
flat colour, photos-like blurs): a perceptual fingerprint that matched any of them to a
generation would be useless as evidence. The transformations are the ones a mark must
survive: re-encoding as JPEG at quality 70, resizing to half, stripping every piece of
metadata, cropping 5 %.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageFilter

SCENE_COUNT = 20


def _encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def unrelated_scene(number: int, size: tuple[int, int] = (768, 512)) -> bytes:
    """Scene ``number`` (0..): a PNG no model here drew, different from every other one."""
    rng = random.Random(f"scene-{number}")
    width, height = size
    kind = number % 5
    background = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    if kind == 0:  # overlapping rectangles
        for _ in range(12):
            x, y = rng.randrange(width), rng.randrange(height)
            box = (x, y, x + rng.randrange(40, 300), y + rng.randrange(40, 300))
            draw.rectangle(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    elif kind == 1:  # discs
        for _ in range(10):
            x, y, r = rng.randrange(width), rng.randrange(height), rng.randrange(20, 160)
            draw.ellipse(
                (x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in range(3))
            )
    elif kind == 2:  # stripes at an angle
        step = rng.randrange(16, 90)
        for offset in range(-height, width, step):
            shade = tuple(rng.randrange(256) for _ in range(3))
            draw.polygon(
                [
                    (offset, 0),
                    (offset + step // 2, 0),
                    (offset + step // 2 + height, height),
                    (offset + height, height),
                ],
                fill=shade,
            )
    elif kind == 3:  # a blurred random field (a photo-like smooth image)
        small = Image.new("RGB", (12, 8))
        small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(96)])
        image = small.resize(size, Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(6))
    else:  # a grid of lines and text-like marks
        for _ in range(40):
            x0, y0 = rng.randrange(width), rng.randrange(height)
            draw.line(
                (x0, y0, rng.randrange(width), rng.randrange(height)),
                fill=(0, 0, 0),
                width=rng.randrange(2, 12),
            )
        for row in range(0, height, 48):
            draw.text(
                (rng.randrange(40), row), "lorem ipsum " * rng.randrange(2, 8), fill=(255, 255, 255)
            )
    return _encoded(image)


def unrelated_scenes(count: int = SCENE_COUNT) -> list[bytes]:
    return [unrelated_scene(number) for number in range(count)]


def as_jpeg_70(data: bytes) -> bytes:
    """Re-encoded as JPEG at quality 70 (what a messaging app does)."""
    return _encoded(_opened(data), "JPEG", quality=70)


def at_half_size(data: bytes) -> bytes:
    """Resized to half its width and height (PNG, no metadata)."""
    image = _opened(data)
    return _encoded(image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS))


def stripped(data: bytes) -> bytes:
    """The same pixels with every piece of metadata gone (XMP, C2PA, text chunks)."""
    return _encoded(_opened(data))


def cropped_5_percent(data: bytes) -> bytes:
    """5 % of the width and of the height cut away, from the right and the bottom."""
    image = _opened(data)
    box = (0, 0, round(image.width * 0.95), round(image.height * 0.95))
    return _encoded(image.crop(box))


def cropped_around(data: bytes) -> bytes:
    """5 % cut away in all, 2.5 % from each edge."""
    image = _opened(data)
    dx, dy = round(image.width * 0.025), round(image.height * 0.025)
    return _encoded(image.crop((dx, dy, image.width - dx, image.height - dy)))


TRANSFORMATIONS: dict[str, Callable[[bytes], bytes]] = {
    "jpeg_quality_70": as_jpeg_70,
    "half_size": at_half_size,
    "metadata_stripped": stripped,
    "cropped_5_percent": cropped_5_percent,
    "cropped_2_5_percent_each_edge": cropped_around,
}
