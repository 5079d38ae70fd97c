"""ID token signatures, locally: the ``cryptography`` package behind the core's
:class:`~fluxgate.access.id_tokens.SignatureVerifier`.

The core has chosen the algorithm and the key (and refused ``none``, HMAC and keys of the
wrong type) before this is called; this only turns a public JWK into a key and checks one
signature. JWS carries an ES256 signature as raw ``r || s`` (32 bytes each), where
``cryptography`` wants DER: it is converted here, after its length is checked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from ..access.id_tokens import b64url_decode

ES256_SIGNATURE_BYTES = 64


def _integer(jwk: Mapping[str, Any], member: str) -> int:
    value = jwk.get(member)
    if not isinstance(value, str) or not value:
        raise ValueError(f"the JWK has no {member}")
    return int.from_bytes(b64url_decode(value), "big")


def _rsa_key(jwk: Mapping[str, Any]) -> rsa.RSAPublicKey:
    if jwk.get("kty") != "RSA":
        raise ValueError("RS256 needs an RSA key")
    return rsa.RSAPublicNumbers(_integer(jwk, "e"), _integer(jwk, "n")).public_key()


def _p256_key(jwk: Mapping[str, Any]) -> ec.EllipticCurvePublicKey:
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("ES256 needs an EC P-256 key")
    numbers = ec.EllipticCurvePublicNumbers(_integer(jwk, "x"), _integer(jwk, "y"), ec.SECP256R1())
    return numbers.public_key()  # ValueError for a point not on the curve


class CryptographySignatures:
    """RS256 (RSASSA-PKCS1-v1_5 with SHA-256) and ES256 (ECDSA P-256 with SHA-256)."""

    async def verify(
        self, algorithm: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        try:
            if algorithm == "RS256":
                _rsa_key(jwk).verify(signature, signing_input, padding.PKCS1v15(), hashes.SHA256())
            elif algorithm == "ES256":
                key = _p256_key(jwk)
                if len(signature) != ES256_SIGNATURE_BYTES:
                    return False
                r = int.from_bytes(signature[:32], "big")
                s = int.from_bytes(signature[32:], "big")
                key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(hashes.SHA256()))
            else:
                raise ValueError(f"unsupported algorithm {algorithm!r}")
        except InvalidSignature:
            return False
        return True
