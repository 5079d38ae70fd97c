"""The ``iloc`` box of an AVIF (HEIF) file: where each item's data lies (ISO/IEC 14496-12
8.11.3), parsed to be rewritten.

Why: whatever is written into an AVIF before its ``mdat`` moves the image's data, and the
``iloc`` box holds that data's file offsets; left as they were, they point into the wrong
bytes and the picture is lost. Both writers move them, each by its own rule: the AI
disclosure grows ``meta`` (a new XMP item), so it encodes the box again, one entry longer;
the C2PA store goes in a box after ``ftyp`` and ``meta`` must keep its length, so the new
offsets are written over the old fields (:meth:`ItemLocations.written_over`), every other
byte kept.

Every field is bounds-checked as it is read: a truncated or hostile box is a
:class:`~fluxgate.imaging.byte_ranges.ContainerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .byte_ranges import ContainerError
from .isobmff import box

__all__ = ["Extent", "Item", "ItemLocations"]

FIELD_WIDTHS = (0, 4, 8)  # the byte widths an iloc may give its offsets and lengths


@dataclass(frozen=True)
class Extent:
    index: int  # extent_index (version 1 and 2, when index_size is not 0)
    offset: int
    length: int


@dataclass(frozen=True)
class Item:
    item_id: int
    method: int  # construction_method: 0 file offset, 1 in idat, 2 in another item
    reference: int  # data_reference_index: 0 is this file
    base: int  # base_offset, which the extents' offsets are relative to
    extents: tuple[Extent, ...]


@dataclass(frozen=True)
class ItemLocations:
    """The box: its version, flags and field widths (bytes, 0 for a field left out), and
    its items in order."""

    version: int
    flags: bytes
    offset_size: int
    length_size: int
    base_offset_size: int
    index_size: int
    items: tuple[Item, ...]
    # Where each parsed item's base_offset field, and each of its extents' offset field,
    # start in the payload it was parsed from: what written_over writes at, which is why it
    # takes the parsed items only (changed in their offsets, not in number).
    fields: tuple[tuple[int, tuple[int, ...]], ...] = field(default=(), compare=False)

    @property
    def id_size(self) -> int:
        return 4 if self.version == 2 else 2

    @classmethod
    def parse(cls, payload: bytes) -> ItemLocations:
        """The box's payload (after its 8-byte header), versions 0 to 2."""
        if len(payload) < 8:
            raise ContainerError("iloc too short")
        version = payload[0]
        if version > 2:
            raise ContainerError(f"iloc version {version}")
        widths = {
            "offset_size": payload[4] >> 4,
            "length_size": payload[4] & 0x0F,
            "base_offset_size": payload[5] >> 4,
            "index_size": payload[5] & 0x0F if version in (1, 2) else 0,
        }
        for name, width in widths.items():
            if width not in FIELD_WIDTHS:
                raise ContainerError(f"iloc {name} {width}")
        reader = _Fields(payload, 6)
        id_size = 4 if version == 2 else 2
        items, fields = [], []
        for _ in range(reader.take(id_size)):
            item_id = reader.take(id_size)
            method = reader.take(2) & 0x0F if version in (1, 2) else 0
            reference = reader.take(2)
            base_at = reader.pos
            base = reader.take(widths["base_offset_size"])
            extents, offsets_at = [], []
            for _ in range(reader.take(2)):
                index = reader.take(widths["index_size"])
                offsets_at.append(reader.pos)
                offset = reader.take(widths["offset_size"])
                extents.append(Extent(index, offset, reader.take(widths["length_size"])))
            items.append(Item(item_id, method, reference, base, tuple(extents)))
            fields.append((base_at, tuple(offsets_at)))
        return cls(version, payload[1:4], items=tuple(items), fields=tuple(fields), **widths)

    def encode(self) -> bytes:
        """The whole ``iloc`` box (header included) for these items."""
        out = bytearray([self.version, *self.flags])
        out.append(self.offset_size << 4 | self.length_size)
        out.append(self.base_offset_size << 4 | self.index_size)
        out += len(self.items).to_bytes(self.id_size, "big")
        for item in self.items:
            out += item.item_id.to_bytes(self.id_size, "big")
            if self.version in (1, 2):
                out += item.method.to_bytes(2, "big")
            out += item.reference.to_bytes(2, "big")
            out += _offset(item.base, self.base_offset_size)
            out += len(item.extents).to_bytes(2, "big")
            for extent in item.extents:
                out += extent.index.to_bytes(self.index_size, "big")
                out += _offset(extent.offset, self.offset_size)
                out += extent.length.to_bytes(self.length_size, "big")
        return box(b"iloc", bytes(out))

    def written_over(self, payload: bytes, items: Sequence[Item]) -> bytes:
        """``payload`` (what this was parsed from) with the base and extent offsets of
        ``items`` (this box's items, in order, their offsets changed) written over the old
        ones: every other byte stays, and so does the box's length."""
        out = bytearray(payload)
        for item, (base_at, offsets_at) in zip(items, self.fields, strict=True):
            out[base_at : base_at + self.base_offset_size] = _offset(
                item.base, self.base_offset_size
            )
            for extent, at in zip(item.extents, offsets_at, strict=True):
                out[at : at + self.offset_size] = _offset(extent.offset, self.offset_size)
        return bytes(out)


def _offset(value: int, width: int) -> bytes:
    if value >= 1 << (8 * width):
        raise ContainerError("an iloc offset no longer fits its field")
    return value.to_bytes(width, "big")


class _Fields:
    """Big-endian numbers read one after another, none past the payload's end."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, width: int) -> int:
        end = self.pos + width
        if end > len(self.data):
            raise ContainerError("iloc entries run past the box")
        value = int.from_bytes(self.data[self.pos : end], "big")
        self.pos = end
        return value
