"""COSE_Sign1 (RFC 9052) with ES256, as a C2PA 2.x claim signature.

The claim is signed detached: the ``COSE_Sign1`` carries no payload (``nil``), and the
signature covers the ``Sig_structure`` ``["Signature1", protected, h'', claim]``. The
protected header holds the algorithm (``1: -7``, ES256) and the signing certificate
chain (``33``, ``x5chain``: one DER certificate as a byte string, several as an array,
leaf first), which C2PA 2.x requires to be protected. The unprotected header is empty
unless a time-stamp token is added (``sigTst2``).

An ES256 signature is always 64 bytes (``r || s``), so a signature's length is known
before signing: the manifest store's length, which the file's hard binding depends on, is
fixed before the claim is hashed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from . import cbor

__all__ = [
    "ES256",
    "ES256_SIGNATURE_LENGTH",
    "CoseError",
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


class CoseError(ValueError):
    """The bytes are not a COSE_Sign1 this module accepts."""


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
    protected: bytes, signature: bytes, unprotected: Mapping[str, cbor.Encodable] | None = None
) -> bytes:
    """The tagged ``COSE_Sign1`` with a detached payload."""
    if len(signature) != ES256_SIGNATURE_LENGTH:
        raise CoseError("an ES256 signature is 64 bytes (r || s)")
    return cbor.encode(
        cbor.Tag(_COSE_SIGN1_TAG, [protected, dict(unprotected or {}), None, signature])
    )


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
