"""ISO base media file format boxes (ISO/IEC 14496-12): AVIF (HEIF) files, and JUMBF.

A box is a 32-bit size, a four-character type and a payload; a size of 1 means a 64-bit
size follows the type, 0 "to the end of the file (or of the parent)". The AI disclosure's
XMP item and the C2PA manifest store both rewrite an AVIF's boxes, and the C2PA store is
itself JUMBF, which is made of boxes too: one strict walker serves them all, so a box that
runs past its parent is refused the same way wherever it is read.

Top-level boxes are walked from their headers alone, through a :data:`Reader` (the image
stays where the runtime keeps it); the boxes inside one (``meta``, a JUMBF superbox) from
bytes already read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .byte_ranges import ContainerError, Reader, exact

__all__ = ["Box", "box", "children", "top_level"]


@dataclass(frozen=True)
class Box:
    kind: bytes
    start: int
    payload: int  # after the size and type (and the 64-bit size, when there is one)
    end: int
    to_end: bool = False  # its size field is 0: it extends to the end of its parent


def box(kind: bytes, payload: bytes) -> bytes:
    """A box with a 32-bit size."""
    if len(payload) + 8 > 0xFFFFFFFF:
        raise ContainerError("box too large")
    return struct.pack(">I4s", len(payload) + 8, kind) + payload


def top_level(read: Reader, size: int) -> Iterator[Box]:
    """The file's top-level boxes in order, each from its header alone."""
    pos = 0
    while pos < size:
        header = exact(read, pos, min(pos + 16, size))
        if len(header) < 8:
            raise ContainerError("a box header runs past the end of the file")
        found = _header(header, pos, size, "the end of the file")
        yield found
        pos = found.end


def children(data: bytes, start: int, end: int, most: int | None = None) -> list[Box]:
    """The boxes of ``data[start:end]``, which they must fill exactly; more than ``most``
    of them is refused (a hostile file of empty boxes costs a loop turn each)."""
    found: list[Box] = []
    pos = start
    while pos < end:
        if most is not None and len(found) >= most:
            raise ContainerError(f"more than {most} boxes")
        if pos + 8 > end:
            raise ContainerError("a box header runs past its parent")
        child = _header(data[pos : min(pos + 16, end)], pos, end, "its parent")
        found.append(child)
        pos = child.end
    return found


def _header(header: bytes, pos: int, limit: int, parent: str) -> Box:
    """The box whose header (at least its first 8 bytes) starts at ``pos``, within ``limit``."""
    size, kind = struct.unpack(">I4s", header[:8])
    payload, to_end = pos + 8, False
    if size == 1:
        if len(header) < 16:
            raise ContainerError(f"a box header runs past {parent}")
        (size,) = struct.unpack(">Q", header[8:16])
        payload = pos + 16
    elif size == 0:
        size, to_end = limit - pos, True
    if size < payload - pos or pos + size > limit:
        raise ContainerError(f"box {kind!r} runs past {parent}")
    return Box(kind, pos, payload, pos + size, to_end)
