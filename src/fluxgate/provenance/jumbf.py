"""JUMBF (ISO/IEC 19566-5), the box format a C2PA manifest store is written in.

A superbox (``jumb``) holds a description box (``jumd``: a type UUID, toggles, a label)
and then content boxes (``cbor``, ``json``, ...) or further superboxes. The manifest store
is a superbox of manifests; each manifest a superbox of the assertion store, the claim and
the claim signature.

Written exactly as ``c2pa-rs`` writes them (toggles ``0x03``: requestable, labelled; no
salt): a validator hashes an ingredient's manifest by serialising it again from what it
parsed, so our layout must be the one it produces, byte for byte. Hashes of assertions and
of manifests are over a superbox's payload (its bytes after the 8-byte box header).

Parsing is bounded: boxes must nest inside their parent exactly, depth is capped, and any
inconsistency is a :class:`JumbfError` (a :class:`ValueError`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "ASSERTION_STORE",
    "CBOR",
    "CLAIM",
    "JSON",
    "MANIFEST",
    "MANIFEST_STORE",
    "SIGNATURE",
    "UPDATE_MANIFEST",
    "ContentBox",
    "JumbfError",
    "SuperBox",
    "box",
    "parse",
    "superbox",
]

# Type UUIDs: a four-character code followed by the ISO suffix 0011-0010-8000-00AA00389B71.
_SUFFIX = bytes.fromhex("00110010800000AA00389B71")
MANIFEST_STORE = b"c2pa" + _SUFFIX
MANIFEST = b"c2ma" + _SUFFIX
UPDATE_MANIFEST = b"c2um" + _SUFFIX
ASSERTION_STORE = b"c2as" + _SUFFIX
CLAIM = b"c2cl" + _SUFFIX
SIGNATURE = b"c2cs" + _SUFFIX
CBOR = b"cbor" + _SUFFIX
JSON = b"json" + _SUFFIX

_REQUESTABLE_LABELLED = 0x03
_LABEL, _ID, _SIGNATURE, _PRIVATE = 0x02, 0x04, 0x08, 0x10
MAX_DEPTH = 8  # store > manifest > assertion store > assertion > content


class JumbfError(ValueError):
    """The bytes are not a well-formed JUMBF superbox."""


def box(kind: bytes, payload: bytes) -> bytes:
    """An ISO box: 32-bit size, four-character type, payload."""
    if len(payload) + 8 > 0xFFFFFFFF:
        raise JumbfError("box too large")
    return struct.pack(">I4s", len(payload) + 8, kind) + payload


def superbox(uuid: bytes, label: str, *children: bytes) -> bytes:
    """A ``jumb`` superbox: its description (requestable, labelled) then ``children``."""
    description = box(b"jumd", uuid + bytes([_REQUESTABLE_LABELLED]) + label.encode() + b"\x00")
    return box(b"jumb", description + b"".join(children))


@dataclass(frozen=True)
class ContentBox:
    kind: bytes
    payload: bytes


@dataclass(frozen=True)
class SuperBox:
    uuid: bytes
    label: str
    children: tuple[SuperBox | ContentBox, ...]
    raw: bytes  # the whole box as found, header included

    @property
    def payload(self) -> bytes:
        """What C2PA hashes: the box after its 8-byte header."""
        return self.raw[8:]

    def superboxes(self) -> list[SuperBox]:
        return [child for child in self.children if isinstance(child, SuperBox)]

    def find(self, label: str) -> SuperBox | None:
        """The child superbox labelled ``label`` (the first, when a file has two)."""
        return next((child for child in self.superboxes() if child.label == label), None)

    def content(self, kind: bytes) -> bytes | None:
        """The payload of the first content box of type ``kind``."""
        for child in self.children:
            if isinstance(child, ContentBox) and child.kind == kind:
                return child.payload
        return None


def parse(data: bytes) -> SuperBox:
    """The superbox ``data`` is (exactly, no bytes after it)."""
    boxes = _boxes(data, 0, len(data))
    if len(boxes) != 1 or boxes[0][0] != b"jumb":
        raise JumbfError("not a single JUMBF superbox")
    _, start, payload, end = boxes[0]
    return _superbox(data, start, payload, end, 0)


def _boxes(data: bytes, start: int, end: int) -> list[tuple[bytes, int, int, int]]:
    """(type, start, payload start, end) of each box in ``data[start:end]``."""
    found = []
    pos = start
    while pos < end:
        if pos + 8 > end:
            raise JumbfError("box header runs past its parent")
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        payload = pos + 8
        if size == 1:
            if pos + 16 > end:
                raise JumbfError("box header runs past its parent")
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
            payload = pos + 16
        elif size == 0:
            size = end - pos
        if size < payload - pos or pos + size > end:
            raise JumbfError(f"box {kind!r} runs past its parent")
        found.append((kind, pos, payload, pos + size))
        pos += size
    return found


def _superbox(data: bytes, start: int, payload: int, end: int, depth: int) -> SuperBox:
    if depth > MAX_DEPTH:
        raise JumbfError("JUMBF nested too deeply")
    boxes = _boxes(data, payload, end)
    if not boxes or boxes[0][0] != b"jumd":
        raise JumbfError("superbox without a description box")
    _, _, desc_start, desc_end = boxes[0]
    uuid, label = _description(data[desc_start:desc_end])
    children: list[SuperBox | ContentBox] = []
    for kind, child_start, child_payload, child_end in boxes[1:]:
        if kind == b"jumb":
            children.append(_superbox(data, child_start, child_payload, child_end, depth + 1))
        else:
            children.append(ContentBox(kind, data[child_payload:child_end]))
    return SuperBox(uuid, label, tuple(children), data[start:end])


def _description(payload: bytes) -> tuple[bytes, str]:
    if len(payload) < 17:
        raise JumbfError("description box too short")
    uuid, toggles = payload[:16], payload[16]
    label = ""
    if toggles & _LABEL:
        terminator = payload.find(b"\x00", 17)
        if terminator < 0:
            raise JumbfError("description label is not terminated")
        try:
            label = payload[17:terminator].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JumbfError("description label is not UTF-8") from exc
    return uuid, label
