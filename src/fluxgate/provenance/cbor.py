"""CBOR (RFC 8949), as much as C2PA manifests use: small, strict and bounded.

C2PA claims, assertions and COSE signatures are CBOR. The encoder writes the shortest form
of every head (what ``c2pa-rs`` writes, so that a claim we sign and a claim it re-serialises
are the same bytes) and maps in the order given (a claim is hashed and signed as bytes, so
the order only has to be stable, and ours is the specification's field order).

The decoder reads our own manifests and those ``c2pa-rs`` writes. It is fed bytes from
images anyone can upload, so it trusts no length: every declared count is checked against
the bytes left before anything is allocated, nesting is capped, and indefinite lengths,
duplicate map keys, trailing bytes and reserved encodings are refused with
:class:`CborError` (a :class:`ValueError`).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["CborError", "Encodable", "Tag", "Value", "decode", "encode"]

MAX_DEPTH = 48  # a manifest nests a dozen levels at most; a hostile one may try thousands
# Items one decode reads at most: a manifest's claim or assertion holds a few hundred; a
# hostile array of millions would hold the event loop for seconds.
MAX_ITEMS = 65_536


class CborError(ValueError):
    """The bytes are not CBOR this decoder accepts (or a value cannot be encoded)."""


@dataclass(frozen=True)
class Tag:
    """A tagged item (major type 6), e.g. COSE_Sign1 is tag 18 around an array."""

    number: int
    value: Encodable


# What the decoder returns.
Value: TypeAlias = (
    bool | int | float | str | bytes | Tag | list["Value"] | dict["str | int", "Value"] | None
)

# What the encoder takes: any sequence, and maps keyed by text, integers or both.
Encodable: TypeAlias = (
    bool
    | int
    | float
    | str
    | bytes
    | Tag
    | Sequence["Encodable"]
    | Mapping[str, "Encodable"]
    | Mapping[int, "Encodable"]
    | Mapping["str | int", "Encodable"]
    | None
)


# -- encoding -----------------------------------------------------------------------------


def _head(major: int, argument: int) -> bytes:
    if argument < 24:
        return bytes([major << 5 | argument])
    if argument < 1 << 8:
        return bytes([major << 5 | 24, argument])
    if argument < 1 << 16:
        return bytes([major << 5 | 25]) + argument.to_bytes(2, "big")
    if argument < 1 << 32:
        return bytes([major << 5 | 26]) + argument.to_bytes(4, "big")
    if argument < 1 << 64:
        return bytes([major << 5 | 27]) + argument.to_bytes(8, "big")
    raise CborError("integer out of CBOR's range")


def encode(value: Encodable) -> bytes:
    """The CBOR encoding of ``value`` (definite lengths, shortest heads)."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _encode(value: Encodable, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CborError("value nested too deeply")
    # The exact built-in types first: a manifest is hundreds of them, and the abstract
    # types' isinstance checks below cost most of the encoding's time on Workers.
    if type(value) is str:
        data = value.encode("utf-8")
        out += _head(3, len(data)) + data
    elif type(value) is int:
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif type(value) is bytes:
        out += _head(2, len(value)) + value
    elif type(value) is dict:
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif type(value) is list or type(value) is tuple:
        out += _head(4, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    else:
        _encode_other(value, out, depth)


def _encode_other(value: Encodable, out: bytearray, depth: int) -> None:
    """Any other value :func:`encode` takes: ``None``, booleans, floats, tags, and the
    subclasses and abstract kinds of the built-in types."""
    if value is None:
        out.append(0xF6)
    elif value is True:
        out.append(0xF5)
    elif value is False:
        out.append(0xF4)
    elif isinstance(value, int):
        out += _head(0, value) if value >= 0 else _head(1, -1 - value)
    elif isinstance(value, float):
        out += b"\xfb" + struct.pack(">d", value)
    elif isinstance(value, bytes):
        out += _head(2, len(value)) + value
    elif isinstance(value, str):
        data = value.encode("utf-8")
        out += _head(3, len(data)) + data
    elif isinstance(value, Tag):
        out += _head(6, value.number)
        _encode(value.value, out, depth + 1)
    elif isinstance(value, Mapping):
        out += _head(5, len(value))
        for key, item in value.items():
            _encode(key, out, depth + 1)
            _encode(item, out, depth + 1)
    elif isinstance(value, Sequence):
        out += _head(4, len(value))
        for item in value:
            _encode(item, out, depth + 1)
    else:
        raise CborError(f"cannot encode a {type(value).__name__}")


# -- decoding -----------------------------------------------------------------------------


def decode(data: bytes) -> Value:
    """The single CBOR item ``data`` holds; anything else is a :class:`CborError`."""
    reader = _Reader(data)
    value = reader.item(0)
    if reader.pos != len(data):
        raise CborError("bytes after the CBOR item")
    return value


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.items = 0

    def take(self, count: int) -> bytes:
        end = self.pos + count
        if end > len(self.data):
            raise CborError("CBOR item runs past the end")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def head(self) -> tuple[int, int, int]:
        """(major type, additional info, argument)."""
        initial = self.take(1)[0]
        major, info = initial >> 5, initial & 0x1F
        if info < 24:
            return major, info, info
        if info <= 27:
            width = 1 << (info - 24)
            return major, info, int.from_bytes(self.take(width), "big")
        raise CborError("indefinite lengths and reserved encodings are not accepted")

    def count(self, argument: int, least_bytes_each: int) -> int:
        """A declared length, refused when the bytes left cannot hold it."""
        if argument * least_bytes_each > len(self.data) - self.pos:
            raise CborError("declared length exceeds the data")
        return argument

    def item(self, depth: int) -> Value:
        if depth > MAX_DEPTH:
            raise CborError("CBOR nested too deeply")
        self.items += 1
        if self.items > MAX_ITEMS:
            raise CborError(f"more than {MAX_ITEMS} CBOR items")
        major, info, argument = self.head()
        if major == 0:
            return argument
        if major == 1:
            return -1 - argument
        if major == 2:
            return self.take(self.count(argument, 1))
        if major == 3:
            try:
                return self.take(self.count(argument, 1)).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise CborError("text string is not UTF-8") from exc
        if major == 4:
            return [self.item(depth + 1) for _ in range(self.count(argument, 1))]
        if major == 5:
            result: dict[str | int, Value] = {}
            for _ in range(self.count(argument, 2)):
                key = self.item(depth + 1)
                if not isinstance(key, str | int) or isinstance(key, bool):
                    raise CborError("map keys must be text or integers")
                if key in result:
                    raise CborError("duplicate map key")
                result[key] = self.item(depth + 1)
            return result
        if major == 6:
            return Tag(argument, self.item(depth + 1))
        return self.simple(info, argument)

    @staticmethod
    def simple(info: int, argument: int) -> Value:
        if info == 20:
            return False
        if info == 21:
            return True
        if info == 22:
            return None
        if info == 25:
            return float(struct.unpack(">e", argument.to_bytes(2, "big"))[0])
        if info == 26:
            return float(struct.unpack(">f", argument.to_bytes(4, "big"))[0])
        if info == 27:
            return float(struct.unpack(">d", argument.to_bytes(8, "big"))[0])
        raise CborError(f"unsupported simple value {argument}")
