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

from ..imaging import isobmff
from ..imaging.byte_ranges import ContainerError

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
MAX_BOXES = 1024  # of one superbox: our stores hold a few dozen in all


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
    if len(boxes) != 1 or boxes[0].kind != b"jumb":
        raise JumbfError("not a single JUMBF superbox")
    return _superbox(data, boxes[0], 0)


def _boxes(data: bytes, start: int, end: int) -> list[isobmff.Box]:
    """The boxes of ``data[start:end]``, which they must fill exactly."""
    try:
        return isobmff.children(data, start, end, most=MAX_BOXES)
    except ContainerError as exc:
        raise JumbfError(str(exc)) from None


def _superbox(data: bytes, found: isobmff.Box, depth: int) -> SuperBox:
    if depth > MAX_DEPTH:
        raise JumbfError("JUMBF nested too deeply")
    boxes = _boxes(data, found.payload, found.end)
    if not boxes or boxes[0].kind != b"jumd":
        raise JumbfError("superbox without a description box")
    uuid, label = _description(data[boxes[0].payload : boxes[0].end])
    children: list[SuperBox | ContentBox] = []
    for child in boxes[1:]:
        if child.kind == b"jumb":
            children.append(_superbox(data, child, depth + 1))
        else:
            children.append(ContentBox(child.kind, data[child.payload : child.end]))
    return SuperBox(uuid, label, tuple(children), data[found.start : found.end])


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
