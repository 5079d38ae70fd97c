"""COSE_Sign1 (RFC 9052) with ES256, as a C2PA 2.x claim signature.

The claim is signed detached: the ``COSE_Sign1`` carries no payload (``nil``), and the
signature covers the ``Sig_structure`` ``["Signature1", protected, h'', claim]``. The
protected header holds the algorithm (``1: -7``, ES256) and the signing certificate
chain (``33``, ``x5chain``: one DER certificate as a byte string, several as an array,
leaf first), which C2PA 2.x requires to be protected. The unprotected header is empty
unless a time-stamp token is added (``sigTst2``).

An ES256 signature is always 64 bytes (``r || s``), so a signature's length is known
before signing: the manifest store's length, which the file's hard binding depends on, is
fixed before the claim is hashed. What goes into the unprotected header after signing (a
time-stamp token, whose length is only known once the authority answers) gets a fixed
reservation instead: the header is padded with a ``"pad"`` byte string (and ``"pad2"``
when one cannot hit the size: a byte string's head grows by one or two bytes at 24, 256
and 65,536) to exactly the reserved length, whatever it holds, as ``c2pa-rs`` does
(``pad_cose_sig`` in ``sdk/src/crypto/cose/sign.rs``; it pads every signature it writes,
so validators read such headers, a padding alone included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import cbor

__all__ = [
    "ES256",
    "ES256_SIGNATURE_LENGTH",
    "CoseError",
    "HeaderTooLarge",
    "Sign1",
    "parse_sign1",
    "protected_header",
    "sig_structure",
    "sign1",
]

ES256 = -7
ES256_SIGNATURE_LENGTH = 64
_ALG = 1
_X5CHAIN = 33
_COSE_SIGN1_TAG = 18
_PADS = ("pad", "pad2")
# A byte string's head: (its length in bytes, for lengths from, up to excluded).
_BYTE_STRING_HEADS = ((1, 0, 24), (2, 24, 1 << 8), (3, 1 << 8, 1 << 16), (5, 1 << 16, 1 << 32))


class CoseError(ValueError):
    """The bytes are not a COSE_Sign1 this module accepts."""


class HeaderTooLarge(CoseError):
    """The unprotected header does not fit in the space reserved for it."""


def protected_header(chain: Sequence[bytes]) -> bytes:
    """The serialized protected header: ES256 and the certificate chain."""
    if not chain:
        raise CoseError("a signature needs its signing certificate")
    certificates: cbor.Encodable = chain[0] if len(chain) == 1 else list(chain)
    return cbor.encode({_ALG: ES256, _X5CHAIN: certificates})


def sig_structure(protected: bytes, payload: bytes) -> bytes:
    """What the signature covers (RFC 9052 section 4.4), with no external data."""
    return cbor.encode(["Signature1", protected, b"", payload])


def sign1(
    protected: bytes,
    signature: bytes,
    unprotected: Mapping[str, cbor.Encodable] | None = None,
    *,
    reserve: int = 0,
) -> bytes:
    """The tagged ``COSE_Sign1`` with a detached payload.

    ``reserve`` > 0: exactly ``reserve`` bytes longer than the same signature with an empty
    unprotected header, ``unprotected`` padded to fill them (:class:`HeaderTooLarge` when
    it does not fit). 0: no reservation, no padding."""
    if len(signature) != ES256_SIGNATURE_LENGTH:
        raise CoseError("an ES256 signature is 64 bytes (r || s)")
    header = dict(unprotected or {})
    if reserve <= 0:
        return _tagged(protected, header, signature)
    if any(label in header for label in _PADS):
        raise CoseError("the unprotected header's padding is this module's to write")
    size = len(_tagged(protected, {}, signature)) + reserve
    unpadded = _tagged(protected, header, signature)
    if len(unpadded) == size:
        return unpadded
    for second in ({}, {"pad2": b""}):
        padded: dict[str, cbor.Encodable] = {**header, "pad": b"", **second}
        room = size - len(_tagged(protected, padded, signature))
        length = _padding_length(room)
        if length is not None:
            padded["pad"] = bytes(length)
            return _tagged(protected, padded, signature)
    used = len(unpadded) - size + reserve
    raise HeaderTooLarge(
        f"the unprotected header ({used} bytes, and its padding) does not fit in the "
        f"{reserve} bytes reserved"
    )


def _tagged(protected: bytes, unprotected: dict[str, cbor.Encodable], signature: bytes) -> bytes:
    return cbor.encode(cbor.Tag(_COSE_SIGN1_TAG, [protected, unprotected, None, signature]))


def _padding_length(room: int) -> int | None:
    """How long a byte string grows ``room`` bytes past an empty one (whose head is one
    byte), if one can: its head takes 1, 2, 3 or 5 bytes as it grows."""
    for head, low, high in _BYTE_STRING_HEADS:
        length = room - (head - 1)
        if low <= length < high:
            return length
    return None


@dataclass(frozen=True)
class Sign1:
    protected: bytes  # as serialized: the Sig_structure covers these bytes
    alg: int
    chain: tuple[bytes, ...]  # DER, leaf first
    signature: bytes


def parse_sign1(data: bytes) -> Sign1:
    """A ``COSE_Sign1`` (tagged or not) with an ES256-style protected header."""
    try:
        value: cbor.Encodable = cbor.decode(data)
    except cbor.CborError as exc:
        raise CoseError(f"not CBOR: {exc}") from exc
    if isinstance(value, cbor.Tag):
        if value.number != _COSE_SIGN1_TAG:
            raise CoseError("not a COSE_Sign1 tag")
        value = value.value
    if not isinstance(value, list) or len(value) != 4:
        raise CoseError("COSE_Sign1 is an array of four")
    protected, unprotected, payload, signature = value
    if not isinstance(protected, bytes) or not isinstance(signature, bytes):
        raise CoseError("COSE_Sign1 fields of the wrong type")
    if not isinstance(unprotected, dict) or payload is not None:
        raise CoseError("COSE_Sign1 with an attached payload or a bad unprotected header")
    try:
        header = cbor.decode(protected) if protected else {}
    except cbor.CborError as exc:
        raise CoseError(f"protected header is not CBOR: {exc}") from exc
    if not isinstance(header, dict):
        raise CoseError("protected header is not a map")
    alg = header.get(_ALG)
    if not isinstance(alg, int) or isinstance(alg, bool):
        raise CoseError("protected header without an algorithm")
    return Sign1(protected, alg, _chain(header.get(_X5CHAIN)), signature)


def _chain(value: cbor.Value) -> tuple[bytes, ...]:
    if isinstance(value, bytes):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(cert, bytes) for cert in value):
        return tuple(cert for cert in value if isinstance(cert, bytes))
    raise CoseError("protected header without an x5chain")
