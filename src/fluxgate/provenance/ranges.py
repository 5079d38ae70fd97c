"""Reading an image's container structure a few bytes at a time, and splice plans.

On Workers an image is a JS buffer and only small ranges may cross into Python, so the
container parsers here read from the image's head when a structure lies in it and ask for
small ``read()``s past it (chunk, segment and box headers; the manifest store itself). What
they produce is a *splice plan* (:data:`~fluxgate.imaging.image_bytes.SplicePart` list):
literal bytes and ranges of the original, assembled by :meth:`ImageBytes.splice` where
the bytes live.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..imaging.image_bytes import HEAD_BYTES, ImageBytes, SplicePart

__all__ = [
    "ContainerError",
    "Plan",
    "Reader",
    "exact",
    "image_reader",
    "plan_size",
    "without_empty",
]

Reader = Callable[[int, int], bytes]


class ContainerError(ValueError):
    """The image's container cannot be parsed, or cannot safely carry a manifest store."""


@dataclass(frozen=True)
class Plan:
    """Where a manifest store goes: the final file, and what its hard binding hashes.

    ``hashed`` is what the runtime hashes for the binding (``ImageBytes.splice(hashed)
    .sha256()``): for a data hash, the final file without the store's container (the
    ``exclusion``, start and length in the final file); for a BMFF hash, each hashed
    top-level box preceded by its final offset."""

    parts: tuple[SplicePart, ...]
    hashed: tuple[SplicePart, ...]
    exclusion: tuple[int, int] | None


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


def plan_size(parts: Sequence[SplicePart]) -> int:
    return sum(part[1] - part[0] if isinstance(part, tuple) else len(part) for part in parts)


def without_empty(parts: Sequence[SplicePart]) -> tuple[SplicePart, ...]:
    """The plan without empty ranges or literals."""
    return tuple(part for part in parts if (part[0] < part[1] if isinstance(part, tuple) else part))
