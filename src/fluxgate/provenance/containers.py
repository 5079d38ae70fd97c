"""Where a C2PA manifest store lives in PNG, JPEG and WebP files, which a data hash binds.

Placement follows what ``c2pa-rs`` writes and reads (``png_io.rs``, ``jpeg_io.rs``,
``riff_io.rs``):

* PNG: one ``caBX`` chunk right after ``IHDR`` (before ``IDAT``, as the spec asks).
* JPEG: ``APP11`` segments holding the store as a JPEG XT box (``CI`` ``JP``, a box
  instance number ``En``, a sequence number ``Z`` from 1; a continuation segment repeats
  the box's ``LBox``/``TBox``), after ``SOI`` and the leading ``APP0``/``APP1`` segments
  (JFIF, Exif, XMP: readers expect those first; ``c2pa-rs`` reads APP11 anywhere before the
  scan); a store over one segment's 64 KiB is split across consecutive segments.
* WebP: a ``C2PA`` chunk at the end of the RIFF, whose size is updated; a simple file
  (``VP8 ``/``VP8L`` alone) first becomes extended (``VP8X``), as unknown chunks need.
  The exclusion is the chunk without its padding byte (the validator checks that it is
  exactly where it finds the store).

An existing store is **replaced** (dropped, wherever it is): a file carries one store, and
ours states what the gateway stands behind. The store's container, as one contiguous
range, is the data hash's only exclusion.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import TypeVar

from ..imaging import chunks
from ..imaging.byte_ranges import ContainerError, Reader, exact, outside, plan_size, without_empty
from ..imaging.image_bytes import SplicePart
from .placement import Plan

__all__ = ["MAX_STORE_BYTES", "extract", "placer", "store_span"]

Placer = Callable[[bytes], Plan]
_Found = TypeVar("_Found")

MAX_STORE_BYTES = 8 * 1024 * 1024  # ours are a few KiB; a hostile length is refused
STORE_TYPE = b"c2pa"  # the first four bytes of the manifest store's JUMBF type UUID
PNG_STORE_CHUNK = b"caBX"
JPEG_APP11 = 0xEB
JPEG_XT_CI = b"JP"
JPEG_STORE_EN = b"\x00\x01"
JPEG_CHUNK = 65000  # store bytes per APP11 segment: with its 18 header bytes, under 64 KiB
WEBP_STORE_CHUNK = b"C2PA"


def placer(fmt: str, read: Reader, size: int) -> Placer:
    """The container parsed once; then, for any store, where it goes."""
    planners = {"png": _png_placer, "jpeg": _jpeg_placer, "webp": _webp_placer}
    return planners[fmt](read, size)


def extract(fmt: str, read: Reader, size: int) -> bytes | None:
    """The manifest store's JUMBF bytes, or None when the file has none."""
    extractors = {"png": _png_extract, "jpeg": _jpeg_extract, "webp": _webp_extract}
    return extractors[fmt](read, size)


def store_span(fmt: str, read: Reader, size: int) -> tuple[int, int] | None:
    """Where the manifest store's container sits (start, length), as a data hash excludes
    it: the whole PNG chunk, every APP11 segment of the store (which must be contiguous),
    the WebP chunk without its padding byte; None when the file has none."""
    if fmt == "png":
        png = _single([(s, e) for kind, s, e in _png_chunks(read, size) if kind == PNG_STORE_CHUNK])
        return None if png is None else (png[0], png[1] - png[0])
    if fmt == "jpeg":
        segments = _single(_jpeg_stores(read, size)[0])
        if segments is None:
            return None
        if any(a[1] != b[0] for a, b in pairwise(segments)):
            raise ContainerError("the manifest store's segments are not contiguous")
        return segments[0][0], segments[-1][1] - segments[0][0]
    listed = _webp_chunks(read, size)
    webp = _single([s for kind, s, _ in listed if kind == WEBP_STORE_CHUNK])
    if webp is None:
        return None
    (length,) = struct.unpack("<I", exact(read, webp + 4, webp + 8))
    return webp, 8 + length


def _single(stores: list[_Found]) -> _Found | None:
    """The one store a file has, or None; a file with two is refused (which is ours?)."""
    if len(stores) > 1:
        raise ContainerError("more than one manifest store")
    return stores[0] if stores else None


def _read_store(read: Reader, start: int, end: int) -> bytes:
    if end - start > MAX_STORE_BYTES:
        raise ContainerError("the manifest store is larger than any this service writes")
    return exact(read, start, end)


def _data_hash_plan(
    before: Sequence[SplicePart], container: bytes, after: Sequence[SplicePart]
) -> Plan:
    return Plan(
        parts=without_empty([*before, container, *after]),
        hashed=without_empty([*before, *after]),
        exclusion=(plan_size(before), len(container)),
    )


# -- PNG ----------------------------------------------------------------------------------


def _png_chunks(read: Reader, size: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk up to ``IEND``; ``IHDR`` first."""
    if exact(read, 0, 8) != chunks.PNG_SIGNATURE:
        raise ContainerError("not a PNG")
    found = []
    pos = 8
    while pos + 12 <= size:
        length, kind = struct.unpack(">I4s", exact(read, pos, pos + 8))
        end = pos + 12 + length
        if end > size:
            raise ContainerError("the file ends inside a PNG chunk")
        found.append((kind, pos, end))
        if kind == b"IEND":
            break
        pos = end
    if not found or found[0][0] != b"IHDR":
        raise ContainerError("PNG without IHDR first")
    return found


def _png_placer(read: Reader, size: int) -> Placer:
    listed = _png_chunks(read, size)
    ihdr_end = listed[0][2]
    dropped = [(start, end) for kind, start, end in listed if kind == PNG_STORE_CHUNK]

    def place(store: bytes) -> Plan:
        chunk = chunks.png_chunk(PNG_STORE_CHUNK, store)
        return _data_hash_plan([(0, ihdr_end)], chunk, outside(ihdr_end, size, dropped))

    return place


def _png_extract(read: Reader, size: int) -> bytes | None:
    listed = _png_chunks(read, size)
    store = _single([(s, e) for kind, s, e in listed if kind == PNG_STORE_CHUNK])
    if store is None:
        return None
    start, end = store
    return _read_store(read, start + 8, end - 4)


# -- JPEG ---------------------------------------------------------------------------------


def _jpeg_stores(read: Reader, size: int) -> tuple[list[list[tuple[int, int]]], int]:
    """The manifest stores' segments (each store's, in order), and where a store goes when
    there is none (after ``SOI`` and the leading ``APP0``/``APP1`` segments)."""
    segments = chunks.jpeg_segments(read, size)
    stores: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] | None = None
    instance = b""
    for marker, start, end in segments:
        if marker != JPEG_APP11 or end - start - 4 <= 16:
            continue
        head = read(start + 4, min(end, start + 4 + 28))
        if head[:2] != JPEG_XT_CI:
            continue
        sequence = int.from_bytes(head[4:8], "big")
        if current is not None and head[2:4] == instance and sequence == len(current) + 1:
            current.append((start, end))
        elif head[24:28] == STORE_TYPE and sequence == 1:
            current, instance = [(start, end)], head[2:4]
            stores.append(current)
        else:
            current = None
    insert_at = 2
    for marker, _, end in segments:
        if marker not in (0xE0, 0xE1):  # JFIF, Exif and XMP stay first, where readers look
            break
        insert_at = end
    return stores, insert_at


def _jpeg_placer(read: Reader, size: int) -> Placer:
    stores, insert_at = _jpeg_stores(read, size)
    dropped = [segment for store in stores for segment in store]
    if dropped:
        insert_at = min(start for start, _ in dropped)

    def place(store: bytes) -> Plan:
        segments = bytearray()
        for index, offset in enumerate(range(0, len(store), JPEG_CHUNK)):
            box_header = store[:8] if index else b""
            payload = (
                JPEG_XT_CI
                + JPEG_STORE_EN
                + (index + 1).to_bytes(4, "big")
                + box_header
                + store[offset : offset + JPEG_CHUNK]
            )
            segments += bytes([0xFF, JPEG_APP11]) + struct.pack(">H", len(payload) + 2) + payload
        return _data_hash_plan([(0, insert_at)], bytes(segments), outside(insert_at, size, dropped))

    return place


def _jpeg_extract(read: Reader, size: int) -> bytes | None:
    store = _single(_jpeg_stores(read, size)[0])
    if store is None:
        return None
    if sum(end - start for start, end in store) > MAX_STORE_BYTES:
        raise ContainerError("the manifest store is larger than any this service writes")
    pieces = [
        exact(read, start + 4 + (8 if index == 0 else 16), end)
        for index, (start, end) in enumerate(store)
    ]
    return b"".join(pieces)


# -- WebP ---------------------------------------------------------------------------------


def _webp_chunks(read: Reader, size: int) -> list[tuple[bytes, int, int]]:
    chunks.check_webp(read, size)
    found = chunks.webp_chunks(read, size)
    if not found:
        raise ContainerError("WebP without chunks")
    return found


def _webp_placer(read: Reader, size: int) -> Placer:
    listed = _webp_chunks(read, size)
    first_kind = listed[0][0]
    if first_kind == b"VP8X":
        vp8x = b""
    elif first_kind in (b"VP8 ", b"VP8L"):
        vp8x = chunks.vp8x_chunk(first_kind, exact(read, 20, 30), 0)
    else:
        raise ContainerError(f"unknown first WebP chunk {first_kind!r}")
    dropped = [(start, end) for kind, start, end in listed if kind == WEBP_STORE_CHUNK]
    body = outside(12, size, dropped)

    def place(store: bytes) -> Plan:
        chunk = struct.pack("<4sI", WEBP_STORE_CHUNK, len(store)) + store
        padding = b"\x00" * (len(store) & 1)  # hashed: the exclusion is the chunk proper
        total = 12 + len(vp8x) + plan_size(body) + len(chunk) + len(padding)
        if total - 8 > 0xFFFFFFFF:
            raise ContainerError("the WebP would outgrow its RIFF size field")
        header = b"RIFF" + struct.pack("<I", total - 8) + b"WEBP" + vp8x
        return _data_hash_plan([header, *body], chunk, [padding])

    return place


def _webp_extract(read: Reader, size: int) -> bytes | None:
    listed = _webp_chunks(read, size)
    store = _single([(s, e) for kind, s, e in listed if kind == WEBP_STORE_CHUNK])
    if store is None:
        return None
    start, _ = store
    (length,) = struct.unpack("<I", exact(read, start + 4, start + 8))
    return _read_store(read, start + 8, start + 8 + length)
