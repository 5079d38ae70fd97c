"""AI disclosure: an XMP packet saying "made by a trained algorithm", in every stored image.

Each stored image (an original and each of its variants) carries IPTC's
``DigitalSourceType = trainedAlgorithmicMedia``, the generator (``xmp:CreatorTool``), the AI
system and its version (IPTC 2025.1 ``AISystemUsed``, ``AISystemVersionUsed``) and the
creation time (``xmp:CreateDate``), embedded where readers look for XMP in each format:
PNG ``iTXt`` ``XML:com.adobe.xmp``, JPEG ``APP1`` ``http://ns.adobe.com/xap/1.0/``, the
WebP ``XMP `` chunk, and an AVIF (HEIF) ``mime`` item of type ``application/rdf+xml``.

Why plans of parts: on Workers the image is a JS buffer and only its head may cross into
Python (CPU). So each format's writer reads the container's structure from the head (and,
where a format keeps chunks past it, from small ranges of headers), and returns a *splice
plan*: literal ``bytes`` (the new chunk, a rewritten header) and ``(start, end)`` ranges of
the original. :meth:`ImageBytes.splice` assembles the marked file in the runtime's own
memory: joined bytes under CPython, a JS buffer filled from views of the original on
Workers. The pixels are never decoded or re-encoded.

An image that already carries an XMP packet has it **replaced**, not kept beside ours: XMP
allows one packet per file (readers take the first or merge unpredictably), and what the
gateway states about how the image was made is the statement it stands behind; a packet
written by the model or by the image transformer is not. (PNG: XMP chunks before the first
``IDAT``, within the head; JPEG: standard and extended XMP segments before the scan; WebP:
the ``XMP `` chunk; AVIF: an XMP item is pointed at the new packet, the old bytes left
unreferenced in their ``mdat``.)

What cannot be parsed safely raises :class:`DisclosureError`: a truncated or inconsistent
container, an AVIF with a movie box, item-offset construction or offsets that would not fit.
The containers are walked by :mod:`fluxgate.imaging.chunks`, :mod:`~fluxgate.imaging.isobmff`
and :mod:`~fluxgate.imaging.iloc`, which the C2PA store's placement walks them with too: the
two writers read a file, and refuse a damaged one, the same way.

The packet is written first; the C2PA Content Credentials (:mod:`fluxgate.delivery.marking`)
are signed over the marked bytes, so the XMP is inside what their hard binding covers.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from ..imaging import chunks
from ..imaging.byte_ranges import (
    ContainerError,
    Reader,
    exact,
    image_reader,
    plan_size,
    without_empty,
)
from ..imaging.iloc import Extent, Item, ItemLocations
from ..imaging.image_bytes import ImageBytes, SplicePart
from ..imaging.isobmff import box, children, top_level
from ..model.family import is_placeholder, spec_of

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
FORMATS = ("png", "jpeg", "webp", "avif")

JPEG_XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_EXTENDED_XMP = b"http://ns.adobe.com/xmp/extension/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
AVIF_XMP_CONTENT_TYPE = b"application/rdf+xml"

Plan = list[SplicePart]


class DisclosureError(ValueError):
    """The container cannot be parsed (or safely rewritten) to carry the XMP packet."""


def xmp_packet(generator: str | None, created: int | None, instance: str | None = None) -> bytes:
    """The XMP packet (RDF/XML, UTF-8): the digital source type, and when known the
    generator (``xmp:CreatorTool``), the creation time (``xmp:CreateDate``, ISO 8601 UTC)
    and the generation this file is (``xmpMM:InstanceID``).

    ``generator`` is the served model name (``@cf/black-forest-labs/flux-2-dev``): it is
    the ``CreatorTool`` and the AI system's version; the system is the model's label
    (:func:`ai_system`).

    The instance id makes every generation's file its own bytes: objects are stored by
    their SHA-256, and two generations that drew the same pixels (another key's identical
    request, a ``no-cache`` re-run) would otherwise share one object, which deleting either
    of them would take from the other."""
    fields = [f"   Iptc4xmpExt:DigitalSourceType={quoteattr(TRAINED_ALGORITHMIC_MEDIA)}"]
    if generator:
        fields.append(f"   xmp:CreatorTool={quoteattr(generator)}")
        fields.append(f"   Iptc4xmpExt:AISystemUsed={quoteattr(ai_system(generator))}")
        fields.append(f"   Iptc4xmpExt:AISystemVersionUsed={quoteattr(generator)}")
    if created is not None:
        when = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        fields.append(f"   xmp:CreateDate={quoteattr(when)}")
    if instance:
        fields.append(f"   xmpMM:InstanceID={quoteattr('xmp.iid:' + instance)}")
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '   xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '   xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '   xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"\n' + "\n".join(fields) + "/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="r"?>'
    )
    return text.encode("utf-8")


def ai_system(generator: str) -> str:
    """IPTC's ``AISystemUsed``: the model's label (``FLUX.2 [dev]``); the offline stand-in
    says it is one, never a real model's name."""
    label = spec_of(generator).label
    return f"offline placeholder for {label}" if is_placeholder(generator) else label


async def mark(
    image: ImageBytes,
    fmt: str,
    generator: str | None,
    created: int | None,
    instance: str | None = None,
) -> ImageBytes:
    """``image`` with the disclosure packet embedded (same runtime kind as ``image``)."""
    if fmt not in FORMATS:
        raise DisclosureError(f"cannot mark a {fmt!r} image")
    packet = xmp_packet(generator, created, instance)
    plan = splice_plan(fmt, image_reader(image), image.size, packet)
    return image.splice(plan)


def splice_plan(fmt: str, read: Reader, size: int, xmp: bytes) -> Plan:
    """How to assemble the marked file: literal parts and ranges of the original."""
    planners = {"png": _png_plan, "jpeg": _jpeg_plan, "webp": _webp_plan, "avif": _avif_plan}
    try:
        return planners[fmt](read, size, xmp)
    except DisclosureError:
        raise
    except ContainerError as exc:  # the shared container parsers' words, as this module's
        raise DisclosureError(str(exc)) from exc
    except (struct.error, IndexError, ValueError) as exc:
        raise DisclosureError(f"unreadable {fmt} container: {exc}") from exc


# -- PNG ----------------------------------------------------------------------------------


def _png_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An uncompressed ``iTXt`` chunk right after ``IHDR``; XMP chunks (``iTXt``, and the
    ``tEXt``/``zTXt`` some writers use, keyword ``XML:com.adobe.xmp``) before the first
    ``IDAT`` are dropped, however far in: a reader takes the last packet it meets, so one
    left behind would override ours. Only chunk headers (and a keyword's bytes) are read."""
    if exact(read, 0, 8) != chunks.PNG_SIGNATURE:
        raise DisclosureError("not a PNG")
    length, kind = struct.unpack(">I4s", exact(read, 8, 16))
    if kind != b"IHDR" or length != 13:
        raise DisclosureError("PNG without IHDR first")
    ihdr_end = 8 + 12 + 13
    itxt = chunks.png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    plan: Plan = [(0, ihdr_end), itxt]
    kept, pos = ihdr_end, ihdr_end
    keyword = PNG_XMP_KEYWORD + b"\x00"
    while pos + 8 <= size:
        length, kind = struct.unpack(">I4s", exact(read, pos, pos + 8))
        end = pos + 12 + length
        if kind in (b"IDAT", b"IEND") or end > size:
            break
        named = length >= len(keyword) and read(pos + 8, pos + 8 + len(keyword)) == keyword
        if kind in _PNG_TEXT and named:
            plan.append((kept, pos))
            kept = end
        pos = end
    plan.append((kept, size))
    return plan


_PNG_TEXT = (b"iTXt", b"tEXt", b"zTXt")


# -- JPEG ---------------------------------------------------------------------------------


def _jpeg_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An ``APP1`` XMP segment after ``SOI``, the JFIF ``APP0`` and the Exif ``APP1`` (the
    order XMP Part 3 asks for); existing XMP segments before the scan are dropped."""
    payload = JPEG_XMP_NAMESPACE + xmp
    if len(payload) + 2 > 0xFFFF:
        raise DisclosureError("the XMP packet does not fit one JPEG segment")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    insert_at, leading = 2, True
    dropped: list[tuple[int, int]] = []
    for marker, pos, end in chunks.jpeg_segments(read, size):
        ident = read(pos + 4, min(end, pos + 4 + len(JPEG_EXTENDED_XMP)))
        is_xmp = marker == 0xE1 and (
            ident.startswith(JPEG_XMP_NAMESPACE) or ident.startswith(JPEG_EXTENDED_XMP)
        )
        if is_xmp:
            dropped.append((pos, end))
        elif leading and (
            (marker == 0xE0 and ident[:5] in (b"JFIF\x00", b"JFXX\x00"))
            or (marker == 0xE1 and ident.startswith(b"Exif\x00"))
        ):
            insert_at = end
        else:
            leading = False
    plan: Plan = []
    cursor = 0
    for start, end in dropped:
        if start <= insert_at < end:  # never inside a dropped segment
            insert_at = end
    for start, end in sorted([*dropped, (insert_at, insert_at)]):
        plan.append((cursor, start))
        if start == end:
            plan.append(segment)
        cursor = end
    plan.append((cursor, size))
    return list(without_empty(plan))


# -- WebP ---------------------------------------------------------------------------------

VP8X_XMP = 0x04


def _webp_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An ``XMP `` chunk at the end (where the container's order puts it), the ``VP8X``
    header's XMP flag set; a simple file (``VP8 ``/``VP8L`` alone) becomes extended."""
    chunks.check_webp(read, size)
    chunk = _padded(b"XMP ", xmp)
    kind, length = struct.unpack("<4sI", exact(read, 12, 20))
    if kind == b"VP8X":
        if length < 10:
            raise DisclosureError("VP8X chunk too short")
        flags = exact(read, 20, 21)[0] | VP8X_XMP
        plan: Plan = [(0, 4), b"size", (8, 20), bytes([flags])]
        cursor = 21
        for chunk_kind, start, end in chunks.webp_chunks(read, size):
            if chunk_kind == b"XMP ":
                plan.append((cursor, start))
                cursor = end
        plan.append((cursor, size))
    elif kind in (b"VP8 ", b"VP8L"):
        vp8x = chunks.vp8x_chunk(kind, exact(read, 20, 30), VP8X_XMP)
        plan = [(0, 4), b"size", (8, 12), vp8x, (12, size)]
    else:
        raise DisclosureError(f"unknown first WebP chunk {kind!r}")
    plan.append(chunk)
    total = plan_size(plan)
    plan[1] = struct.pack("<I", total - 8)
    return plan


def _padded(kind: bytes, data: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(data)) + data + b"\x00" * (len(data) & 1)


# -- AVIF (HEIF, ISOBMFF) -----------------------------------------------------------------


def _uint(data: bytes, pos: int, width: int) -> int:
    return int.from_bytes(data[pos : pos + width], "big") if width else 0


def _shifted(iloc: ItemLocations, meta_start: int, meta_end: int, delta: int) -> ItemLocations:
    """``iloc`` with every file offset that points past the ``meta`` box moved by ``delta``."""
    items = []
    for item in iloc.items:
        if item.reference != 0 or item.method == 1:
            items.append(item)  # another file; or idat (relative to idat, which moves with meta)
            continue
        if item.method != 0:
            raise DisclosureError(f"iloc construction method {item.method}")
        if iloc.base_offset_size and item.base >= meta_end:
            items.append(replace(item, base=item.base + delta))
            continue
        extents = []
        for extent in item.extents:
            start = item.base + extent.offset
            if start >= meta_end:
                if not iloc.offset_size:
                    raise DisclosureError("an iloc offset past meta has no field to shift")
                extent = replace(extent, offset=extent.offset + delta)
            elif start + extent.length > meta_start or extent.length == 0:
                raise DisclosureError("an iloc extent overlaps the meta box")
            extents.append(extent)
        items.append(replace(item, extents=tuple(extents)))
    return replace(iloc, items=tuple(items))


def _with_xmp_item(iloc: ItemLocations, item_id: int, offset: int, length: int) -> ItemLocations:
    """``iloc`` with one more item: ``length`` bytes at the file offset ``offset``."""
    if item_id >= 1 << (8 * iloc.id_size):
        raise DisclosureError("no item id left for the XMP item")
    if not iloc.length_size or length >= 1 << (8 * iloc.length_size):
        raise DisclosureError("iloc cannot hold the XMP item's length")
    if iloc.offset_size:
        item = Item(item_id, 0, 0, 0, (Extent(0, offset, length),))
    elif iloc.base_offset_size:
        item = Item(item_id, 0, 0, offset, (Extent(0, 0, length),))
    else:
        raise DisclosureError("iloc has no offset fields")
    return replace(iloc, items=(*iloc.items, item))


def _item_ids(iinf_payload: bytes) -> tuple[int, list[int], int | None]:
    """The ``iinf`` box's entry-count width, its items' ids, and the id of an XMP item
    (``mime``, ``application/rdf+xml``) when it has one."""
    count_size = 2 if iinf_payload[0] == 0 else 4
    ids, xmp_item = [], None
    for infe in children(iinf_payload, 4 + count_size, len(iinf_payload)):
        if infe.kind != b"infe":
            continue
        version = iinf_payload[infe.payload]
        id_size = 4 if version == 3 else 2
        ids.append(_uint(iinf_payload, infe.payload + 4, id_size))
        if version >= 2:
            fields = iinf_payload[infe.payload + 4 + id_size + 2 : infe.end]
            strings = fields[4:].split(b"\x00")
            if fields[:4] == b"mime" and len(strings) > 1 and strings[1] == AVIF_XMP_CONTENT_TYPE:
                xmp_item = ids[-1]
    return count_size, ids, xmp_item


def _avif_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An XMP ``mime`` item: an ``infe`` in ``iinf``, an ``iloc`` entry pointing into an
    ``mdat`` appended at the end, a ``cdsc`` reference to the primary item; the file
    offsets of ``iloc`` past the ``meta`` box shifted by its growth."""
    top = list(top_level(read, size))
    if not top or top[0].kind != b"ftyp":
        raise DisclosureError("not an ISOBMFF file")
    kinds = [found.kind for found in top]
    if b"moov" in kinds or b"moof" in kinds:
        raise DisclosureError("image sequences (moov) are not marked")
    metas = [found for found in top if found.kind == b"meta"]
    if len(metas) != 1:
        raise DisclosureError("not exactly one meta box")
    meta_start, meta_end = metas[0].start, metas[0].end
    meta = exact(read, meta_start, meta_end)
    body = metas[0].payload - meta_start + 4  # meta is a full box: version and flags
    inside = children(meta, body, len(meta))
    by_kind = {}
    for child in inside:
        if child.kind in by_kind and child.kind in (b"iloc", b"iinf", b"iref", b"pitm"):
            raise DisclosureError(f"two {child.kind!r} boxes")
        by_kind[child.kind] = child
    for required in (b"iloc", b"iinf", b"pitm"):
        if required not in by_kind:
            raise DisclosureError(f"meta without {required!r}")
    pitm = by_kind[b"pitm"]
    primary = _uint(meta, pitm.payload + 4, 2 if meta[pitm.payload] == 0 else 4)

    old_iinf = by_kind[b"iinf"]
    iinf = meta[old_iinf.payload : old_iinf.end]
    count_size, ids, existing = _item_ids(iinf)
    xmp_id = max([*ids, primary]) + 1 if existing is None else existing
    infe_version = 2 if xmp_id <= 0xFFFF else 3
    infe = box(
        b"infe",
        bytes([infe_version, 0, 0, 0])
        + xmp_id.to_bytes(2 if infe_version == 2 else 4, "big")
        + b"\x00\x00mime"
        + b"XMP\x00"
        + AVIF_XMP_CONTENT_TYPE
        + b"\x00",
    )
    entry_count = _uint(iinf, 4, count_size) + 1
    if entry_count >= 1 << (8 * count_size):
        raise DisclosureError("iinf cannot count one more item")
    new_iinf = box(
        b"iinf", iinf[:4] + entry_count.to_bytes(count_size, "big") + iinf[4 + count_size :] + infe
    )
    if existing is not None:  # an XMP item already: it points to ours now (replaced)
        new_iinf = meta[old_iinf.start : old_iinf.end]

    old_iref = by_kind.get(b"iref")
    if existing is not None and old_iref is not None:  # its references stay as they are
        new_iref = meta[old_iref.start : old_iref.end]
        old_iref_size = len(new_iref)
    elif old_iref is not None:  # one more reference box in it
        iref = meta[old_iref.payload : old_iref.end]
        new_iref = box(b"iref", iref + _cdsc(xmp_id, primary, iref[0] == 1))
        old_iref_size = old_iref.end - old_iref.start
    else:  # a new iref box, appended to meta
        wide = xmp_id > 0xFFFF or primary > 0xFFFF
        new_iref = box(b"iref", bytes([int(wide), 0, 0, 0]) + _cdsc(xmp_id, primary, wide))
        old_iref_size = 0

    old_iloc = by_kind[b"iloc"]
    parsed = ItemLocations.parse(meta[old_iloc.payload : old_iloc.end])
    # The old packet's place is dropped: the XMP item points to the new one.
    iloc = replace(parsed, items=tuple(item for item in parsed.items if item.item_id != xmp_id))
    growth = len(new_iinf) - (old_iinf.end - old_iinf.start) + len(new_iref) - old_iref_size
    # The iloc box grows by one entry; its size does not depend on the offsets' values.
    sized = _with_xmp_item(iloc, xmp_id, 0, len(xmp)).encode()
    growth += len(sized) - (old_iloc.end - old_iloc.start)
    meta_header = meta[:body]
    new_meta_size = len(meta) + growth
    if len(meta_header) == 12 and new_meta_size > 0xFFFFFFFF:
        raise DisclosureError("the meta box would outgrow its size field")
    shifted = _shifted(iloc, meta_start, meta_end, growth)
    total_before_mdat = size + growth
    mdat_header_size = 8
    new_iloc = _with_xmp_item(shifted, xmp_id, total_before_mdat + mdat_header_size, len(xmp))
    new_children = {b"iinf": new_iinf, b"iloc": new_iloc.encode(), b"iref": new_iref}

    parts = [new_children.get(child.kind, meta[child.start : child.end]) for child in inside]
    if old_iref is None:
        parts.append(new_iref)
    new_body = b"".join(parts)
    if len(meta_header) == 12:
        new_meta = struct.pack(">I", len(meta_header) + len(new_body)) + meta_header[4:]
    else:  # 64-bit size
        new_meta = (
            meta_header[:8] + struct.pack(">Q", len(meta_header) + len(new_body)) + meta_header[16:]
        )
    new_meta += new_body
    if len(new_meta) != new_meta_size:
        raise DisclosureError("internal: meta size mismatch")
    plan: Plan = [(0, meta_start), new_meta]
    last = top[-1]
    if last.to_end and last.start != meta_start:
        # "extends to the end of the file": give it its size, as a box follows now
        box_size = size - last.start
        if box_size > 0xFFFFFFFF:
            raise DisclosureError(f"box {last.kind!r} extends to the end of the file")
        plan += [(meta_end, last.start), struct.pack(">I", box_size), (last.start + 4, size)]
    else:
        plan.append((meta_end, size))
    plan.append(box(b"mdat", xmp))
    return list(without_empty(plan))


def _cdsc(from_id: int, to_id: int, wide: bool) -> bytes:
    width = 4 if wide else 2
    if max(from_id, to_id) >= 1 << (8 * width):
        raise DisclosureError("iref cannot hold the item ids")
    return box(b"cdsc", from_id.to_bytes(width, "big") + b"\x00\x01" + to_id.to_bytes(width, "big"))
