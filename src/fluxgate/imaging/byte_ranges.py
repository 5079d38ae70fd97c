"""Reading an image's container a few bytes at a time, and the splice plans made of ranges.

On Workers an image is a JS buffer and only small ranges may cross into Python, so every
container parser (the AI disclosure's XMP writer, the C2PA store's placement and reading)
reads structures through a :data:`Reader`: from the image's head when they lie in it, by a
small ``read()`` past it (chunk, segment and box headers; a manifest store). What the
writers produce is a list of :data:`~fluxgate.imaging.image_bytes.SplicePart`: literal bytes
and ranges of the original, assembled by :meth:`ImageBytes.splice` where the bytes live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .image_bytes import HEAD_BYTES, ImageBytes, SplicePart

__all__ = [
    "ContainerError",
    "Reader",
    "exact",
    "image_reader",
    "outside",
    "plan_size",
    "without_empty",
]

Reader = Callable[[int, int], bytes]


class ContainerError(ValueError):
    """The image's container cannot be parsed, or cannot safely carry what is written in."""


def image_reader(image: ImageBytes) -> Reader:
    """Ranges of ``image``: from its head when they lie in it, else read (small ones)."""
    head = image.head(HEAD_BYTES)
    size = image.size

    def read(start: int, end: int) -> bytes:
        end = min(end, size)
        if start < 0 or start > end:
            raise ContainerError("a structure points outside the file")
        if end <= len(head):
            return head[start:end]
        return image.read(start, end)

    return read


def exact(read: Reader, start: int, end: int) -> bytes:
    """``[start, end)``, all of it, or a :class:`ContainerError`."""
    data = read(start, end)
    if len(data) != end - start:
        raise ContainerError("the file ends inside a structure")
    return data


def outside(start: int, end: int, ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``[start, end)`` without ``ranges`` (which may overlap): what a dropped chunk leaves
    of the original, what a hash with exclusions covers."""
    parts = []
    cursor = start
    for range_start, range_end in sorted(ranges):
        if range_start > cursor:
            parts.append((cursor, range_start))
        cursor = max(cursor, range_end)
    if cursor < end:
        parts.append((cursor, end))
    return parts


def plan_size(parts: Sequence[SplicePart]) -> int:
    """The length of what ``parts`` assemble."""
    return sum(part[1] - part[0] if isinstance(part, tuple) else len(part) for part in parts)


def without_empty(parts: Sequence[SplicePart]) -> tuple[SplicePart, ...]:
    """The plan without empty ranges or literals."""
    return tuple(part for part in parts if (part[0] < part[1] if isinstance(part, tuple) else part))
