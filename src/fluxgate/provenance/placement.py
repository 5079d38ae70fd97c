"""Where a manifest store goes in an image, and what its hard binding then hashes.

Placing the store and hashing the file it makes are one decision: a data hash excludes
exactly the store's container, a BMFF hash covers each top-level box after its offset in
the *new* file. So each format's placer (:mod:`.containers`, :mod:`.bmff`) answers both at
once, as splice plans over the original (:mod:`fluxgate.imaging.byte_ranges`), and the
runtime assembles and hashes them where the image's bytes live.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..imaging.image_bytes import SplicePart

__all__ = ["Plan"]


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
