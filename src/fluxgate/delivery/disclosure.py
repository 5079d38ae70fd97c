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

The packet is written first; the C2PA Content Credentials (:mod:`fluxgate.delivery.marking`)
are signed over the marked bytes, so the XMP is inside what their hard binding covers.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

from ..imaging.image_bytes import HEAD_BYTES, ImageBytes, SplicePart
from ..model.family import is_placeholder, spec_of

TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
FORMATS = ("png", "jpeg", "webp", "avif")

JPEG_XMP_NAMESPACE = b"http://ns.adobe.com/xap/1.0/\x00"
JPEG_EXTENDED_XMP = b"http://ns.adobe.com/xmp/extension/\x00"
PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
AVIF_XMP_CONTENT_TYPE = b"application/rdf+xml"

Plan = list[SplicePart]
Reader = Callable[[int, int], bytes]


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
    plan = splice_plan(fmt, _reader(image), image.size, packet)
    return image.splice(plan)


def splice_plan(fmt: str, read: Reader, size: int, xmp: bytes) -> Plan:
    """How to assemble the marked file: literal parts and ranges of the original."""
    planners = {"png": _png_plan, "jpeg": _jpeg_plan, "webp": _webp_plan, "avif": _avif_plan}
    try:
        return planners[fmt](read, size, xmp)
    except (struct.error, IndexError, ValueError) as exc:
        if isinstance(exc, DisclosureError):
            raise
        raise DisclosureError(f"unreadable {fmt} container: {exc}") from exc


def _reader(image: ImageBytes) -> Reader:
    """Ranges of ``image``: from its head when they lie in it, else read (small ones)."""
    head = image.head(HEAD_BYTES)

    def read(start: int, end: int) -> bytes:
        end = min(end, image.size)
        if start < 0 or start > end:
            raise DisclosureError("a structure points outside the file")
        if end <= len(head):
            return head[start:end]
        return image.read(start, end)

    return read


def _exact(read: Reader, start: int, end: int) -> bytes:
    data = read(start, end)
    if len(data) != end - start:
        raise DisclosureError("the file ends inside a structure")
    return data


# -- PNG ----------------------------------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An uncompressed ``iTXt`` chunk right after ``IHDR``; XMP chunks (``iTXt``, and the
    ``tEXt``/``zTXt`` some writers use, keyword ``XML:com.adobe.xmp``) before the first
    ``IDAT`` are dropped, however far in: a reader takes the last packet it meets, so one
    left behind would override ours. Only chunk headers (and a keyword's bytes) are read."""
    if _exact(read, 0, 8) != PNG_SIGNATURE:
        raise DisclosureError("not a PNG")
    length, kind = struct.unpack(">I4s", _exact(read, 8, 16))
    if kind != b"IHDR" or length != 13:
        raise DisclosureError("PNG without IHDR first")
    ihdr_end = 8 + 12 + 13
    itxt = _png_chunk(b"iTXt", PNG_XMP_KEYWORD + b"\x00\x00\x00\x00\x00" + xmp)
    plan: Plan = [(0, ihdr_end), itxt]
    kept, pos = ihdr_end, ihdr_end
    keyword = PNG_XMP_KEYWORD + b"\x00"
    while pos + 8 <= size:
        length, kind = struct.unpack(">I4s", _exact(read, pos, pos + 8))
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
    if _exact(read, 0, 2) != b"\xff\xd8":
        raise DisclosureError("not a JPEG")
    payload = JPEG_XMP_NAMESPACE + xmp
    if len(payload) + 2 > 0xFFFF:
        raise DisclosureError("the XMP packet does not fit one JPEG segment")
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    pos, insert_at, leading = 2, 2, True
    dropped: list[tuple[int, int]] = []
    while True:
        marker_bytes = _exact(read, pos, pos + 2)
        if marker_bytes[0] != 0xFF:
            raise DisclosureError("JPEG segment without a marker")
        marker = marker_bytes[1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xDA, 0xD9):  # start of scan / end of image: headers are over
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", _exact(read, pos + 2, pos + 4))
        if length < 2:
            raise DisclosureError("JPEG segment with a bad length")
        end = pos + 2 + length
        if end > size:
            raise DisclosureError("the file ends inside a JPEG segment")
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
        pos = end
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
    return [part for part in plan if not isinstance(part, tuple) or part[0] < part[1]]


# -- WebP ---------------------------------------------------------------------------------

VP8X_XMP = 0x04
VP8X_ALPHA = 0x10


def _webp_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An ``XMP `` chunk at the end (where the container's order puts it), the ``VP8X``
    header's XMP flag set; a simple file (``VP8 ``/``VP8L`` alone) becomes extended."""
    riff, riff_size, webp = struct.unpack("<4sI4s", _exact(read, 0, 12))
    if riff != b"RIFF" or webp != b"WEBP":
        raise DisclosureError("not a WebP")
    if riff_size + 8 != size:
        raise DisclosureError("the RIFF size does not match the file")
    chunk = _padded(b"XMP ", xmp)
    kind, length = struct.unpack("<4sI", _exact(read, 12, 20))
    if kind == b"VP8X":
        if length < 10:
            raise DisclosureError("VP8X chunk too short")
        flags = _exact(read, 20, 21)[0] | VP8X_XMP
        plan: Plan = [(0, 4), b"size", (8, 20), bytes([flags])]
        cursor = 21
        pos = 12
        while pos < size:
            if pos + 8 > size:
                raise DisclosureError("the file ends inside a WebP chunk header")
            kind, length = struct.unpack("<4sI", _exact(read, pos, pos + 8))
            end = pos + 8 + length + (length & 1)
            if end > size:
                raise DisclosureError("the file ends inside a WebP chunk")
            if kind == b"XMP ":
                plan.append((cursor, pos))
                cursor = end
            pos = end
        plan.append((cursor, size))
    elif kind in (b"VP8 ", b"VP8L"):
        width, height, alpha = _simple_webp_canvas(kind, _exact(read, 20, 30))
        vp8x = struct.pack("<4sI", b"VP8X", 10) + bytes([VP8X_XMP | (VP8X_ALPHA * alpha), 0, 0, 0])
        vp8x += (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
        plan = [(0, 4), b"size", (8, 12), vp8x, (12, size)]
    else:
        raise DisclosureError(f"unknown first WebP chunk {kind!r}")
    plan.append(chunk)
    total = _planned_size(plan)
    plan[1] = struct.pack("<I", total - 8)
    return plan


def _simple_webp_canvas(kind: bytes, data: bytes) -> tuple[int, int, bool]:
    """Width, height and alpha of a simple WebP's bitstream (the VP8X canvas size)."""
    if kind == b"VP8 ":
        if data[3:6] != b"\x9d\x01\x2a":
            raise DisclosureError("VP8 key frame without its start code")
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF, False
    if data[0] != 0x2F:
        raise DisclosureError("VP8L without its signature")
    (bits,) = struct.unpack("<I", data[1:5])
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool((bits >> 28) & 1)


def _padded(kind: bytes, data: bytes) -> bytes:
    return struct.pack("<4sI", kind, len(data)) + data + b"\x00" * (len(data) & 1)


def _planned_size(plan: Sequence[SplicePart]) -> int:
    return sum(part[1] - part[0] if isinstance(part, tuple) else len(part) for part in plan)


# -- AVIF (HEIF, ISOBMFF) -----------------------------------------------------------------


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """The boxes of ``data[start:end]``: (type, box start, payload start, box end)."""
    out = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise DisclosureError("a box header runs past its parent")
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = pos + 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos or pos + size > end:
            raise DisclosureError(f"box {kind!r} runs past its parent")
        out.append((kind, pos, payload, pos + size))
        pos += size
    return out


def _top_level(read: Reader, size: int) -> list[tuple[bytes, int, int, int, bool]]:
    """The file's top-level boxes (type, start, payload start, end, size-to-EOF), from
    their headers alone."""
    out = []
    pos = 0
    while pos < size:
        header = _exact(read, pos, min(pos + 16, size))
        if len(header) < 8:
            raise DisclosureError("a box header runs past the end of the file")
        box_size, kind = struct.unpack(">I4s", header[:8])
        payload, to_eof = pos + 8, False
        if box_size == 1:
            (box_size,) = struct.unpack(">Q", header[8:16])
            payload = pos + 16
        elif box_size == 0:
            box_size, to_eof = size - pos, True
        if box_size < payload - pos or pos + box_size > size:
            raise DisclosureError(f"box {kind!r} runs past the end of the file")
        out.append((kind, pos, payload, pos + box_size, to_eof))
        pos += box_size
    return out


def _uint(data: bytes, pos: int, width: int) -> int:
    return int.from_bytes(data[pos : pos + width], "big") if width else 0


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


class _Iloc:
    """An ``iloc`` box, parsed to be rewritten with shifted offsets and one more item."""

    def __init__(self, payload: bytes) -> None:
        self.version = payload[0]
        if self.version > 2:
            raise DisclosureError(f"iloc version {self.version}")
        self.flags = payload[1:4]
        self.offset_size = payload[4] >> 4
        self.length_size = payload[4] & 0x0F
        self.base_offset_size = payload[5] >> 4
        self.index_size = payload[5] & 0x0F if self.version in (1, 2) else 0
        for name in ("offset_size", "length_size", "base_offset_size", "index_size"):
            if getattr(self, name) not in (0, 4, 8):
                raise DisclosureError(f"iloc {name} {getattr(self, name)}")
        self.id_size = 4 if self.version == 2 else 2
        pos = 6
        count_size = 4 if self.version == 2 else 2
        count = _uint(payload, pos, count_size)
        pos += count_size
        # Each item: [id, method, data_reference_index, base_offset, [(index, offset, length)]]
        self.items: list[tuple[int, int, int, int, list[list[int]]]] = []
        for _ in range(count):
            item_id = _uint(payload, pos, self.id_size)
            pos += self.id_size
            method = 0
            if self.version in (1, 2):
                method = _uint(payload, pos, 2) & 0x0F
                pos += 2
            reference = _uint(payload, pos, 2)
            pos += 2
            base = _uint(payload, pos, self.base_offset_size)
            pos += self.base_offset_size
            extent_count = _uint(payload, pos, 2)
            pos += 2
            extents = []
            for _ in range(extent_count):
                index = _uint(payload, pos, self.index_size)
                pos += self.index_size
                offset = _uint(payload, pos, self.offset_size)
                pos += self.offset_size
                length = _uint(payload, pos, self.length_size)
                pos += self.length_size
                extents.append([index, offset, length])
            self.items.append((item_id, method, reference, base, extents))
        if pos > len(payload):
            raise DisclosureError("iloc entries run past the box")

    def shifted(self, meta_start: int, meta_end: int, delta: int) -> None:
        """Move every file offset that points past the ``meta`` box by ``delta``."""
        for i, (item_id, method, reference, base, extents) in enumerate(self.items):
            if reference != 0 or method == 1:
                continue  # another file; or idat (relative to idat, which moves with meta)
            if method != 0:
                raise DisclosureError(f"iloc construction method {method}")
            if self.base_offset_size and base >= meta_end:
                base += delta
                self._fits(base, self.base_offset_size)
                self.items[i] = (item_id, method, reference, base, extents)
                continue
            for extent in extents:
                start = base + extent[1]
                if start >= meta_end:
                    if not self.offset_size:
                        raise DisclosureError("an iloc offset past meta has no field to shift")
                    extent[1] += delta
                    self._fits(extent[1], self.offset_size)
                elif start + extent[2] > meta_start or extent[2] == 0:
                    raise DisclosureError("an iloc extent overlaps the meta box")

    def add(self, item_id: int, offset: int, length: int) -> None:
        if item_id >= 1 << (8 * self.id_size):
            raise DisclosureError("no item id left for the XMP item")
        if not self.length_size or length >= 1 << (8 * self.length_size):
            raise DisclosureError("iloc cannot hold the XMP item's length")
        if self.offset_size:
            self._fits(offset, self.offset_size)
            self.items.append((item_id, 0, 0, 0, [[0, offset, length]]))
        elif self.base_offset_size:
            self._fits(offset, self.base_offset_size)
            self.items.append((item_id, 0, 0, offset, [[0, 0, length]]))
        else:
            raise DisclosureError("iloc has no offset fields")

    @staticmethod
    def _fits(value: int, width: int) -> None:
        if value >= 1 << (8 * width):
            raise DisclosureError("an iloc offset no longer fits its field")

    def encode(self) -> bytes:
        out = bytearray([self.version, *self.flags])
        out.append(self.offset_size << 4 | self.length_size)
        out.append(self.base_offset_size << 4 | self.index_size)
        count_size = 4 if self.version == 2 else 2
        out += len(self.items).to_bytes(count_size, "big")
        for item_id, method, reference, base, extents in self.items:
            out += item_id.to_bytes(self.id_size, "big")
            if self.version in (1, 2):
                out += method.to_bytes(2, "big")
            out += reference.to_bytes(2, "big")
            out += base.to_bytes(self.base_offset_size, "big")
            out += len(extents).to_bytes(2, "big")
            for index, offset, length in extents:
                out += index.to_bytes(self.index_size, "big")
                out += offset.to_bytes(self.offset_size, "big")
                out += length.to_bytes(self.length_size, "big")
        return _box(b"iloc", bytes(out))


def _item_ids(iinf_payload: bytes) -> tuple[int, list[int], int | None]:
    """The ``iinf`` box's entry-count width, its items' ids, and the id of an XMP item
    (``mime``, ``application/rdf+xml``) when it has one."""
    count_size = 2 if iinf_payload[0] == 0 else 4
    ids, xmp_item = [], None
    for kind, _, payload, end in _boxes(iinf_payload, 4 + count_size, len(iinf_payload)):
        if kind != b"infe":
            continue
        version = iinf_payload[payload]
        id_size = 4 if version == 3 else 2
        ids.append(_uint(iinf_payload, payload + 4, id_size))
        if version >= 2:
            fields = iinf_payload[payload + 4 + id_size + 2 : end]
            strings = fields[4:].split(b"\x00")
            if fields[:4] == b"mime" and len(strings) > 1 and strings[1] == AVIF_XMP_CONTENT_TYPE:
                xmp_item = ids[-1]
    return count_size, ids, xmp_item


def _avif_plan(read: Reader, size: int, xmp: bytes) -> Plan:
    """An XMP ``mime`` item: an ``infe`` in ``iinf``, an ``iloc`` entry pointing into an
    ``mdat`` appended at the end, a ``cdsc`` reference to the primary item; the file
    offsets of ``iloc`` past the ``meta`` box shifted by its growth."""
    top = _top_level(read, size)
    if not top or top[0][0] != b"ftyp":
        raise DisclosureError("not an ISOBMFF file")
    kinds = [box[0] for box in top]
    if b"moov" in kinds or b"moof" in kinds:
        raise DisclosureError("image sequences (moov) are not marked")
    metas = [box for box in top if box[0] == b"meta"]
    if len(metas) != 1:
        raise DisclosureError("not exactly one meta box")
    _, meta_start, meta_payload, meta_end, _ = metas[0]
    meta = _exact(read, meta_start, meta_end)
    body = meta_payload - meta_start + 4  # meta is a full box: version and flags
    children = _boxes(meta, body, len(meta))
    by_kind: dict[bytes, tuple[int, int, int]] = {}
    for kind, start, payload, end in children:
        if kind in by_kind and kind in (b"iloc", b"iinf", b"iref", b"pitm"):
            raise DisclosureError(f"two {kind!r} boxes")
        by_kind[kind] = (start, payload, end)
    for required in (b"iloc", b"iinf", b"pitm"):
        if required not in by_kind:
            raise DisclosureError(f"meta without {required!r}")
    _, pitm_payload, _ = by_kind[b"pitm"]
    primary = _uint(meta, pitm_payload + 4, 2 if meta[pitm_payload] == 0 else 4)

    iinf_start, iinf_payload, iinf_end = by_kind[b"iinf"]
    iinf = meta[iinf_payload:iinf_end]
    count_size, ids, existing = _item_ids(iinf)
    xmp_id = max([*ids, primary]) + 1 if existing is None else existing
    infe_version = 2 if xmp_id <= 0xFFFF else 3
    infe = _box(
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
    new_iinf = _box(
        b"iinf", iinf[:4] + entry_count.to_bytes(count_size, "big") + iinf[4 + count_size :] + infe
    )
    if existing is not None:  # an XMP item already: it points to ours now (replaced)
        new_iinf = meta[iinf_start:iinf_end]

    old_iref = by_kind.get(b"iref")
    if existing is not None and old_iref is not None:  # its references stay as they are
        new_iref = meta[old_iref[0] : old_iref[2]]
        old_iref_size = len(new_iref)
    elif old_iref is not None:  # one more reference box in it
        iref = meta[old_iref[1] : old_iref[2]]
        new_iref = _box(b"iref", iref + _cdsc(xmp_id, primary, iref[0] == 1))
        old_iref_size = old_iref[2] - old_iref[0]
    else:  # a new iref box, appended to meta
        wide = xmp_id > 0xFFFF or primary > 0xFFFF
        new_iref = _box(b"iref", bytes([int(wide), 0, 0, 0]) + _cdsc(xmp_id, primary, wide))
        old_iref_size = 0

    iloc_start, iloc_payload, iloc_end = by_kind[b"iloc"]
    iloc = _Iloc(meta[iloc_payload:iloc_end])
    iloc.items = [item for item in iloc.items if item[0] != xmp_id]  # the old packet's place
    growth = len(new_iinf) - (iinf_end - iinf_start) + len(new_iref) - old_iref_size
    # The iloc box grows by one entry; its size does not depend on the offsets' values.
    iloc.add(xmp_id, 0, len(xmp))
    growth += len(iloc.encode()) - (iloc_end - iloc_start)
    iloc.items.pop()
    meta_header = meta[:body]
    new_meta_size = len(meta) + growth
    if len(meta_header) == 12 and new_meta_size > 0xFFFFFFFF:
        raise DisclosureError("the meta box would outgrow its size field")
    iloc.shifted(meta_start, meta_end, growth)
    total_before_mdat = size + growth
    mdat_header_size = 8
    iloc.add(xmp_id, total_before_mdat + mdat_header_size, len(xmp))
    new_children = {b"iinf": new_iinf, b"iloc": iloc.encode(), b"iref": new_iref}

    parts = []
    for kind, start, _, end in children:
        parts.append(new_children.get(kind, meta[start:end]))
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
    last_kind, last_start, _, _, to_eof = top[-1]
    if (
        to_eof and last_start != meta_start
    ):  # "extends to the end of the file": give it its size, as a box follows now
        box_size = size - last_start
        if box_size > 0xFFFFFFFF:
            raise DisclosureError(f"box {last_kind!r} extends to the end of the file")
        plan += [(meta_end, last_start), struct.pack(">I", box_size), (last_start + 4, size)]
    else:
        plan.append((meta_end, size))
    plan.append(_box(b"mdat", xmp))
    return [part for part in plan if not isinstance(part, tuple) or part[0] < part[1]]


def _cdsc(from_id: int, to_id: int, wide: bool) -> bytes:
    width = 4 if wide else 2
    if max(from_id, to_id) >= 1 << (8 * width):
        raise DisclosureError("iref cannot hold the item ids")
    return _box(
        b"cdsc", from_id.to_bytes(width, "big") + b"\x00\x01" + to_id.to_bytes(width, "big")
    )
