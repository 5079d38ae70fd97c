"""The manifest store in an AVIF (HEIF, ISO BMFF) file, and its ``c2pa.hash.bmff.v3``.

The store goes in a top-level ``uuid`` box (the C2PA ``ContentProvenanceBox``: its UUID,
version and flags, the purpose ``manifest``, an 8-byte offset to Merkle boxes, 0 here, then
the JUMBF store) right after ``ftyp``, where ``c2pa-rs`` writes it. Everything after
``ftyp`` moves by the box's length, so the ``iloc`` box's file offsets (the image items'
data in ``mdat``, the XMP packet's) are rewritten; ``meta`` keeps its size. An existing C2PA
box is dropped (replaced). Image sequences (``moov``/``moof``) are refused: their sample
tables hold offsets too.

The BMFF hash (C2PA 2.x, section 18.6; ``bmff_hash.rs``) is over the top-level boxes in
file order, each not wholly excluded preceded by its file offset as a big-endian 64-bit
number; the standard exclusions are ``ftyp``, the C2PA ``uuid`` box, ``free``, ``skip`` and
``mfra``. None depends on the store's length, so the store is measured once.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from ..imaging import isobmff
from ..imaging.byte_ranges import ContainerError, Reader, exact, outside, without_empty
from ..imaging.iloc import ItemLocations
from ..imaging.image_bytes import SplicePart
from .cbor import Encodable, Value
from .placement import Plan

__all__ = [
    "C2PA_UUID",
    "DEFAULT_EXCLUSIONS",
    "Box",
    "extract",
    "hashed_parts",
    "placer",
    "top_level",
]

C2PA_UUID = bytes.fromhex("D8FEC3D61B0E483C92975828877EC481")
MANIFEST_PURPOSE = b"manifest"
MAX_STORE_BYTES = 8 * 1024 * 1024
MAX_META_BYTES = 4 * 1024 * 1024  # iloc, iinf, properties (an ICC profile): small
MAX_BOXES = 4096
MAX_EXCLUSIONS = 64  # ours has five; a hostile manifest's thousands would cost boxes x them

DEFAULT_EXCLUSIONS: tuple[dict[str, Encodable], ...] = (
    {"xpath": "/uuid", "data": [{"offset": 8, "value": C2PA_UUID}]},
    {"xpath": "/ftyp"},
    {"xpath": "/mfra"},
    {"xpath": "/free"},
    {"xpath": "/skip"},
)


@dataclass(frozen=True)
class Box:
    """A top-level box as the BMFF hash sees it: a ``uuid`` box with its extended type, by
    which the C2PA box is told apart (and its payload after it)."""

    kind: bytes
    start: int
    payload: int  # after the header (and a uuid box's extended type)
    end: int
    usertype: bytes = b""  # a uuid box's extended type

    @property
    def is_c2pa(self) -> bool:
        return self.kind == b"uuid" and self.usertype == C2PA_UUID


def top_level(read: Reader, size: int) -> list[Box]:
    """The file's top-level boxes, from their headers alone; ``ftyp`` first."""
    boxes: list[Box] = []
    for found in isobmff.top_level(read, size):
        if len(boxes) >= MAX_BOXES:
            raise ContainerError("too many top-level boxes")
        boxes.append(_with_usertype(read, found))
    if not boxes or boxes[0].kind != b"ftyp":
        raise ContainerError("not an ISO BMFF file")
    return boxes


def _with_usertype(read: Reader, found: isobmff.Box) -> Box:
    """The box, with a ``uuid`` box's extended type read (what tells the C2PA box apart)."""
    if found.kind != b"uuid":
        return Box(found.kind, found.start, found.payload, found.end)
    usertype = read(found.payload, found.payload + 16)
    if len(usertype) != 16:
        raise ContainerError("a uuid box without its type")
    if found.payload + 16 > found.end:
        raise ContainerError(f"box {found.kind!r} runs past the end of the file")
    return Box(found.kind, found.start, found.payload + 16, found.end, usertype)


def extract(read: Reader, size: int) -> bytes | None:
    """The store in the file's C2PA ``manifest`` box, or None when it has none."""
    stores = []
    for box in top_level(read, size):
        if not box.is_c2pa:
            continue
        head = exact(read, box.payload, min(box.end, box.payload + 4 + 64))
        terminator = head.find(b"\x00", 4)
        if terminator < 0:
            raise ContainerError("C2PA box without a purpose")
        if head[4:terminator] == MANIFEST_PURPOSE:
            stores.append(box.payload + terminator + 1 + 8)
            stores.append(box.end)
    if not stores:
        return None
    if len(stores) > 2:
        raise ContainerError("more than one manifest store")
    start, end = stores
    if start > end or end - start > MAX_STORE_BYTES:
        raise ContainerError("C2PA box of a bad size")
    return exact(read, start, end)


def store_box(store: bytes) -> bytes:
    """The ``uuid`` box carrying ``store``."""
    payload = C2PA_UUID + b"\x00\x00\x00\x00" + MANIFEST_PURPOSE + b"\x00" + bytes(8) + store
    if len(payload) + 8 > 0xFFFFFFFF:
        raise ContainerError("the manifest store is too large for a box")
    return struct.pack(">I4s", len(payload) + 8, b"uuid") + payload


def placer(read: Reader, size: int) -> Callable[[bytes], Plan]:
    """The file parsed once; then, for any store, the new file and its hashed parts."""
    boxes = top_level(read, size)
    kinds = {box.kind for box in boxes}
    if b"moov" in kinds or b"moof" in kinds:
        raise ContainerError("image sequences (moov) are not signed")
    metas = [box for box in boxes if box.kind == b"meta"]
    if len(metas) > 1:
        raise ContainerError("more than one meta box")
    meta = metas[0] if metas else None
    if meta is not None and meta.end - meta.start > MAX_META_BYTES:
        raise ContainerError("meta box too large")
    meta_bytes = exact(read, meta.start, meta.end) if meta is not None else b""
    ftyp = boxes[0]
    kept = [box for box in boxes[1:] if not box.is_c2pa]
    dropped = [box for box in boxes if box.is_c2pa]

    def place(store: bytes) -> Plan:
        uuid_box = store_box(store)

        def moved(offset: int) -> int:
            if offset < ftyp.end:
                raise ContainerError("an item's data lies in ftyp")
            shift = len(uuid_box)
            for box in dropped:
                if box.start <= offset < box.end:
                    raise ContainerError("an item's data lies in the old C2PA box")
                if box.end <= offset:
                    shift -= box.end - box.start
            return offset + shift

        new_meta = _rewritten_meta(meta_bytes, moved) if meta is not None else b""
        parts: list[SplicePart] = [(ftyp.start, ftyp.end), uuid_box]
        hashed: list[SplicePart] = []
        position = ftyp.end + len(uuid_box)
        for box in kept:
            content: SplicePart = new_meta if box is meta else (box.start, box.end)
            parts.append(content)
            if box.kind not in _WHOLLY_EXCLUDED:
                hashed += [struct.pack(">Q", position), content]
            position += box.end - box.start
        return Plan(without_empty(parts), without_empty(hashed), None)

    return place


_WHOLLY_EXCLUDED = frozenset({b"ftyp", b"free", b"skip", b"mfra"})


def hashed_parts(
    read: Reader, size: int, exclusions: Sequence[Value]
) -> tuple[SplicePart, ...] | None:
    """What a BMFF v2/v3 hash with these exclusions covers in the file as it is, or None
    when the exclusions use what this reader does not evaluate (nested paths, Merkle)."""
    if len(exclusions) > MAX_EXCLUSIONS:
        return None
    boxes = top_level(read, size)
    excluded: list[tuple[int, int]] = []
    whole: set[int] = set()
    for exclusion in exclusions:
        if not isinstance(exclusion, dict):
            return None
        xpath = exclusion.get("xpath")
        if not isinstance(xpath, str) or xpath.count("/") != 1 or not xpath.startswith("/"):
            return None
        if set(exclusion) - {"xpath", "length", "data", "subset"}:
            return None  # version/flags predicates: not needed by any image we sign
        kind = xpath[1:].encode("latin-1", "replace")
        for box in boxes:
            if box.kind != kind or not _matches(read, box, exclusion):
                continue
            subsets = exclusion.get("subset")
            if subsets is None:
                excluded.append((box.start, box.end))
                whole.add(box.start)
                continue
            if not isinstance(subsets, list):
                return None
            for subset in subsets:
                if not isinstance(subset, dict):
                    return None
                offset, length = subset.get("offset"), subset.get("length")
                if not isinstance(offset, int) or not isinstance(length, int):
                    return None
                if offset < 0 or length < 0:
                    return None
                box_length = box.end - box.start
                if offset > box_length:
                    continue
                length = box_length - offset if length == 0 else min(length, box_length - offset)
                excluded.append((box.start + offset, box.start + offset + length))
    markers = sorted(box.start for box in boxes if box.start not in whole)
    parts: list[SplicePart] = []
    for start, end in outside(0, size, excluded):
        cursor = start
        for marker in markers:
            if start <= marker < end:
                if marker > cursor:
                    parts.append((cursor, marker))
                    cursor = marker
                parts.append(struct.pack(">Q", marker))
        parts.append((cursor, end))
    return without_empty(parts)


def _matches(read: Reader, box: Box, exclusion: dict[str | int, Value]) -> bool:
    length = exclusion.get("length")
    if length is not None and length != box.end - box.start:
        return False
    data = exclusion.get("data")
    if data is None:
        return True
    if not isinstance(data, list):
        return False
    for item in data:
        if not isinstance(item, dict):
            return False
        offset, value = item.get("offset"), item.get("value")
        if not isinstance(offset, int) or not isinstance(value, bytes) or offset < 0:
            return False
        start = box.start + offset
        if start + len(value) > box.end or read(start, start + len(value)) != value:
            return False
    return True


# -- meta / iloc --------------------------------------------------------------------------


def _rewritten_meta(meta: bytes, moved: Callable[[int], int]) -> bytes:
    """``meta`` with its ``iloc`` file offsets moved (the box keeps its length)."""
    meta_payload = isobmff.children(meta, 0, len(meta))[0].payload
    ilocs = [
        child
        for child in isobmff.children(meta, meta_payload + 4, len(meta))  # meta is a full box
        if child.kind == b"iloc"
    ]
    if not ilocs:
        return meta
    if len(ilocs) > 1:
        raise ContainerError("more than one iloc box")
    iloc = ilocs[0]
    new_iloc = _moved_iloc(meta[iloc.payload : iloc.end], moved)
    return meta[: iloc.payload] + new_iloc + meta[iloc.end :]


def _moved_iloc(payload: bytes, moved: Callable[[int], int]) -> bytes:
    """The ``iloc`` payload with every file offset of this file's items moved; the field
    widths stay, so the box keeps its length (an offset that no longer fits is refused)."""
    iloc = ItemLocations.parse(payload)
    items = []
    for item in iloc.items:
        if item.reference != 0 or item.method != 0:
            items.append(item)  # idat (moves with meta), another item's data, another file
        elif iloc.base_offset_size and item.base:
            items.append(replace(item, base=moved(item.base)))  # the extents are relative
        elif item.extents and not iloc.offset_size:
            raise ContainerError("an iloc extent without an offset field")
        else:
            extents = (replace(extent, offset=moved(extent.offset)) for extent in item.extents)
            items.append(replace(item, extents=tuple(extents)))
    return iloc.written_over(payload, items)
