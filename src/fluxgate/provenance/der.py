"""A small, strict DER reader: what reading X.509 certificates and PKCS#8 keys takes.

The Worker runs in Pyodide, where there is no ``cryptography`` package to parse a
certificate with, and WebCrypto parses keys, not certificates. The signing identity is read
once per isolate, so a few hundred lines of pure Python are enough; they are strict (one
encoding of each value: definite, minimal lengths, no trailing bytes) because a C2PA
validator parses the same certificates with a strict parser, and a chain this reader let
through but the validator refused would only show up as invalid Content Credentials.
Only low tag numbers (< 31) are read: X.509 and PKCS#8 use no others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "BIT_STRING",
    "BOOLEAN",
    "GENERALIZED_TIME",
    "INTEGER",
    "NULL",
    "OCTET_STRING",
    "OID",
    "SEQUENCE",
    "SET",
    "UTC_TIME",
    "DerError",
    "Element",
    "algorithm_identifier",
    "bit_string",
    "boolean",
    "context",
    "integer",
    "key_purposes",
    "object_identifier",
    "read_all",
    "read_extensions",
    "read_one",
    "time_value",
]

BOOLEAN = 0x01
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
NULL = 0x05
OID = 0x06
UTC_TIME = 0x17
GENERALIZED_TIME = 0x18
SEQUENCE = 0x30
SET = 0x31

MAX_LENGTH_OCTETS = 4  # 4 GiB: far past anything a certificate or a key holds


class DerError(ValueError):
    """The bytes are not the DER this reader expects (the message says what is wrong where,
    never the bytes: a private key is read with the same code)."""


def context(number: int, *, constructed: bool) -> int:
    """The tag of ``[number]`` (context-specific), as a constructed or a primitive value:
    ``[0] EXPLICIT`` is ``context(0, constructed=True)``."""
    return 0x80 | (0x20 if constructed else 0) | number


@dataclass(frozen=True)
class Element:
    """One value: its tag (the identifier octet), its contents, and its whole encoding (what
    a signature covers and what a name is compared by)."""

    tag: int
    body: bytes
    encoded: bytes

    def children(self, what: str) -> list[Element]:
        """The values a constructed element (a SEQUENCE, a SET, an explicit tag) holds."""
        if not self.tag & 0x20:
            raise DerError(f"{what} is not a constructed value")
        return read_all(self.body, what)

    def expect(self, tag: int, what: str) -> Element:
        if self.tag != tag:
            raise DerError(f"{what} has tag 0x{self.tag:02x}, not 0x{tag:02x}")
        return self


def _read(data: bytes, at: int, what: str) -> tuple[Element, int]:
    if at + 2 > len(data):
        raise DerError(f"{what} is truncated")
    tag = data[at]
    if tag & 0x1F == 0x1F:
        raise DerError(f"{what} uses a high tag number")
    first = data[at + 1]
    start = at + 2
    if first < 0x80:
        length = first
    elif first == 0x80:
        raise DerError(f"{what} uses an indefinite length (BER, not DER)")
    else:
        count = first & 0x7F
        if count > MAX_LENGTH_OCTETS or start + count > len(data):
            raise DerError(f"{what} has an unreadable length")
        length = int.from_bytes(data[start : start + count], "big")
        if data[start] == 0 or length < 0x80:
            raise DerError(f"{what} has a length not in its shortest form")
        start += count
    end = start + length
    if end > len(data):
        raise DerError(f"{what} is truncated")
    return Element(tag, data[start:end], data[at:end]), end


def read_all(data: bytes, what: str) -> list[Element]:
    """The consecutive values ``data`` holds, all of it."""
    elements: list[Element] = []
    at = 0
    while at < len(data):
        element, at = _read(data, at, what)
        elements.append(element)
    return elements


def read_one(data: bytes, tag: int, what: str) -> Element:
    """The single value ``data`` is, of this tag, with nothing after it."""
    element, end = _read(data, 0, what)
    if end != len(data):
        raise DerError(f"{what} has bytes after its end")
    return element.expect(tag, what)


def integer(element: Element, what: str) -> int:
    body = element.expect(INTEGER, what).body
    if not body:
        raise DerError(f"{what} is an empty INTEGER")
    if len(body) > 1 and (
        (body[0] == 0x00 and body[1] < 0x80) or (body[0] == 0xFF and body[1] >= 0x80)
    ):
        raise DerError(f"{what} is an INTEGER not in its shortest form")
    return int.from_bytes(body, "big", signed=True)


def boolean(element: Element, what: str) -> bool:
    body = element.expect(BOOLEAN, what).body
    if body not in (b"\x00", b"\xff"):
        raise DerError(f"{what} is not a DER BOOLEAN")
    return body == b"\xff"


def bit_string(element: Element, what: str) -> tuple[bytes, int]:
    """The bits' octets and how many bits of the last octet are unused (always 0 for a key;
    a flag set such as keyUsage drops its trailing zero bits)."""
    body = element.expect(BIT_STRING, what).body
    if not body or body[0] > 7 or (len(body) == 1 and body[0] != 0):
        raise DerError(f"{what} is not a valid BIT STRING")
    unused = body[0]
    if unused and body[-1] & ((1 << unused) - 1):
        raise DerError(f"{what} has bits set among its unused bits")
    return body[1:], unused


def object_identifier(element: Element, what: str) -> str:
    """The OID in dotted form (``1.2.840.10045.2.1``)."""
    body = element.expect(OID, what).body
    if not body or body[-1] & 0x80:
        raise DerError(f"{what} is not a valid OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in body:
        if fresh and octet == 0x80:
            raise DerError(f"{what} has a sub-identifier not in its shortest form")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(arc) for arc in head + arcs[1:])


_UTC_TIME = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z")


def time_value(element: Element, what: str) -> float:
    """A certificate's UTCTime or GeneralizedTime as Unix seconds. RFC 5280's forms only:
    seconds present, no fraction, in UTC (``Z``); a UTCTime's year 50-99 is 19xx."""
    pattern = {UTC_TIME: _UTC_TIME, GENERALIZED_TIME: _GENERALIZED_TIME}.get(element.tag)
    if pattern is None:
        raise DerError(f"{what} is not a time")
    match = pattern.fullmatch(element.body.decode("ascii", "replace"))
    if match is None:
        raise DerError(f"{what} is not a time in RFC 5280's form")
    year, month, day, hour, minute, second = (int(part) for part in match.groups())
    if element.tag == UTC_TIME:
        year += 1900 if year >= 50 else 2000
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise DerError(f"{what} is not a calendar date") from None
    return moment.timestamp()


# -- X.509's shared structures: what a certificate and a time-stamp token both carry ------


def algorithm_identifier(element: Element, what: str) -> tuple[str, list[Element]]:
    """An AlgorithmIdentifier's OID and its parameters (none, or one value)."""
    parts = element.expect(SEQUENCE, what).children(what)
    if not 1 <= len(parts) <= 2:
        raise DerError(f"{what} is not an AlgorithmIdentifier")
    return object_identifier(parts[0], what), parts[1:]


def read_extensions(wrapper: Element, what: str) -> list[tuple[str, bool, bytes]]:
    """A TBSCertificate's ``extensions [3]`` (``wrapper``): each one's OID, critical flag and
    the contents of its ``extnValue``, in order (a repeated OID is the caller's to refuse)."""
    listed = read_one(wrapper.body, SEQUENCE, what).children(what)
    found = []
    for extension in listed:
        parts = extension.expect(SEQUENCE, "an extension").children("an extension")
        if len(parts) not in (2, 3):
            raise DerError("an extension is not an OID, a flag and a value")
        oid = object_identifier(parts[0], "an extension's OID")
        critical = boolean(parts[1], "an extension's critical flag") if len(parts) == 3 else False
        found.append((oid, critical, parts[-1].expect(OCTET_STRING, "an extension's value").body))
    return found


def key_purposes(value: bytes) -> list[str]:
    """The OIDs an ``extendedKeyUsage`` extension's value lists."""
    listed = read_one(value, SEQUENCE, "extendedKeyUsage").children("extendedKeyUsage")
    return [object_identifier(oid, "a key purpose") for oid in listed]
