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
import zlib
from collections.abc import Callable, Sequence

from ..imaging.image_bytes import SplicePart
from .ranges import ContainerError, Plan, Reader, exact, plan_size, without_empty

__all__ = ["MAX_STORE_BYTES", "extract", "placer"]

Placer = Callable[[bytes], Plan]

MAX_STORE_BYTES = 8 * 1024 * 1024  # ours are a few KiB; a hostile length is refused
STORE_TYPE = b"c2pa"  # the first four bytes of the manifest store's JUMBF type UUID
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_STORE_CHUNK = b"caBX"
JPEG_APP11 = 0xEB
JPEG_XT_CI = b"JP"
JPEG_STORE_EN = b"\x00\x01"
JPEG_CHUNK = 65000  # store bytes per APP11 segment: with its 18 header bytes, under 64 KiB
WEBP_STORE_CHUNK = b"C2PA"
VP8X_ALPHA = 0x10


def placer(fmt: str, read: Reader, size: int) -> Placer:
    """The container parsed once; then, for any store, where it goes."""
    planners = {"png": _png_placer, "jpeg": _jpeg_placer, "webp": _webp_placer}
    return planners[fmt](read, size)


def extract(fmt: str, read: Reader, size: int) -> bytes | None:
    """The manifest store's JUMBF bytes, or None when the file has none."""
    extractors = {"png": _png_extract, "jpeg": _jpeg_extract, "webp": _webp_extract}
    return extractors[fmt](read, size)


def _kept(start: int, end: int, dropped: Sequence[tuple[int, int]]) -> list[SplicePart]:
    """``[start, end)`` without the ``dropped`` ranges (sorted, within it)."""
    parts: list[SplicePart] = []
    cursor = start
    for drop_start, drop_end in sorted(dropped):
        if drop_start > cursor:
            parts.append((cursor, drop_start))
        cursor = max(cursor, drop_end)
    if cursor < end:
        parts.append((cursor, end))
    return parts


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
    if exact(read, 0, 8) != PNG_SIGNATURE:
        raise ContainerError("not a PNG")
    chunks = []
    pos = 8
    while pos + 12 <= size:
        length, kind = struct.unpack(">I4s", exact(read, pos, pos + 8))
        end = pos + 12 + length
        if end > size:
            raise ContainerError("the file ends inside a PNG chunk")
        chunks.append((kind, pos, end))
        if kind == b"IEND":
            break
        pos = end
    if not chunks or chunks[0][0] != b"IHDR":
        raise ContainerError("PNG without IHDR first")
    return chunks


def _png_placer(read: Reader, size: int) -> Placer:
    chunks = _png_chunks(read, size)
    ihdr_end = chunks[0][2]
    dropped = [(start, end) for kind, start, end in chunks if kind == PNG_STORE_CHUNK]

    def place(store: bytes) -> Plan:
        crc = zlib.crc32(PNG_STORE_CHUNK + store) & 0xFFFFFFFF
        chunk = struct.pack(">I4s", len(store), PNG_STORE_CHUNK) + store + struct.pack(">I", crc)
        return _data_hash_plan([(0, ihdr_end)], chunk, _kept(ihdr_end, size, dropped))

    return place


def _png_extract(read: Reader, size: int) -> bytes | None:
    stores = [(s, e) for kind, s, e in _png_chunks(read, size) if kind == PNG_STORE_CHUNK]
    if not stores:
        return None
    if len(stores) > 1:
        raise ContainerError("more than one manifest store")
    start, end = stores[0]
    return _read_store(read, start + 8, end - 4)


# -- JPEG ---------------------------------------------------------------------------------


def _jpeg_segments(read: Reader, size: int) -> list[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment before the scan."""
    if exact(read, 0, 2) != b"\xff\xd8":
        raise ContainerError("not a JPEG")
    segments: list[tuple[int, int, int]] = []
    pos = 2
    while True:
        marker_bytes = exact(read, pos, pos + 2)
        if marker_bytes[0] != 0xFF:
            raise ContainerError("JPEG segment without a marker")
        marker = marker_bytes[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan, end of image: the headers are over
            return segments
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
            pos += 2
            continue
        (length,) = struct.unpack(">H", exact(read, pos + 2, pos + 4))
        end = pos + 2 + length
        if length < 2 or end > size:
            raise ContainerError("JPEG segment with a bad length")
        segments.append((marker, pos, end))
        pos = end


def _jpeg_stores(read: Reader, size: int) -> tuple[list[list[tuple[int, int]]], int]:
    """The manifest stores' segments (each store's, in order), and where a store goes when
    there is none (after ``SOI`` and the leading ``APP0``/``APP1`` segments)."""
    segments = _jpeg_segments(read, size)
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
        return _data_hash_plan([(0, insert_at)], bytes(segments), _kept(insert_at, size, dropped))

    return place


def _jpeg_extract(read: Reader, size: int) -> bytes | None:
    stores, _ = _jpeg_stores(read, size)
    if not stores:
        return None
    if len(stores) > 1:
        raise ContainerError("more than one manifest store")
    if sum(end - start for start, end in stores[0]) > MAX_STORE_BYTES:
        raise ContainerError("the manifest store is larger than any this service writes")
    pieces = [
        exact(read, start + 4 + (8 if index == 0 else 16), end)
        for index, (start, end) in enumerate(stores[0])
    ]
    return b"".join(pieces)


# -- WebP ---------------------------------------------------------------------------------


def _webp_chunks(read: Reader, size: int) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk, its padding byte included."""
    riff, riff_size, webp = struct.unpack("<4sI4s", exact(read, 0, 12))
    if riff != b"RIFF" or webp != b"WEBP":
        raise ContainerError("not a WebP")
    if riff_size + 8 != size:
        raise ContainerError("the RIFF size does not match the file")
    chunks = []
    pos = 12
    while pos < size:
        if pos + 8 > size:
            raise ContainerError("the file ends inside a WebP chunk header")
        kind, length = struct.unpack("<4sI", exact(read, pos, pos + 8))
        end = pos + 8 + length + (length & 1)
        if end > size:
            raise ContainerError("the file ends inside a WebP chunk")
        chunks.append((kind, pos, end))
        pos = end
    if not chunks:
        raise ContainerError("WebP without chunks")
    return chunks


def _webp_placer(read: Reader, size: int) -> Placer:
    chunks = _webp_chunks(read, size)
    first_kind = chunks[0][0]
    if first_kind == b"VP8X":
        vp8x = b""
    elif first_kind in (b"VP8 ", b"VP8L"):
        width, height, alpha = _simple_canvas(first_kind, exact(read, 20, 30))
        flags = VP8X_ALPHA if alpha else 0
        vp8x = struct.pack("<4sI", b"VP8X", 10) + bytes([flags, 0, 0, 0])
        vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    else:
        raise ContainerError(f"unknown first WebP chunk {first_kind!r}")
    dropped = [(start, end) for kind, start, end in chunks if kind == WEBP_STORE_CHUNK]
    body = _kept(12, size, dropped)

    def place(store: bytes) -> Plan:
        chunk = struct.pack("<4sI", WEBP_STORE_CHUNK, len(store)) + store
        padding = b"\x00" * (len(store) & 1)  # hashed: the exclusion is the chunk proper
        total = 12 + len(vp8x) + plan_size(body) + len(chunk) + len(padding)
        if total - 8 > 0xFFFFFFFF:
            raise ContainerError("the WebP would outgrow its RIFF size field")
        header = b"RIFF" + struct.pack("<I", total - 8) + b"WEBP" + vp8x
        return _data_hash_plan([header, *body], chunk, [padding])

    return place


def _simple_canvas(kind: bytes, data: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's bitstream (for its new ``VP8X``)."""
    if kind == b"VP8 ":
        if data[3:6] != b"\x9d\x01\x2a":
            raise ContainerError("VP8 key frame without its start code")
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if data[0] != 0x2F:
        raise ContainerError("VP8L without its signature")
    (bits,) = struct.unpack("<I", data[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def _webp_extract(read: Reader, size: int) -> bytes | None:
    stores = [(s, e) for kind, s, e in _webp_chunks(read, size) if kind == WEBP_STORE_CHUNK]
    if not stores:
        return None
    if len(stores) > 1:
        raise ContainerError("more than one manifest store")
    start, _ = stores[0]
    (length,) = struct.unpack("<I", exact(read, start + 4, start + 8))
    return _read_store(read, start + 8, start + 8 + length)
