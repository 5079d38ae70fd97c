"""C2PA claim signing on Workers: WebCrypto behind the core's
:class:`~fluxgate.provenance.signer.ClaimSigner`.

The operator's identity is two secrets: ``C2PA_SIGNING_KEY`` (PKCS#8 PEM, EC P-256) and
``C2PA_CERTIFICATE_CHAIN`` (PEM, the signing certificate first). The chain is checked in
pure Python (:class:`~fluxgate.provenance.certificates.SigningChain`: Pyodide has no
``cryptography``); the key goes into ``crypto.subtle`` as a non-extractable key, and
signing is native code that charges no Python CPU. WebCrypto's ECDSA signature is raw
``r || s``, exactly COSE's ES256 encoding, so nothing is converted.

Keys are imported on first use, never at import time: workerd takes a snapshot of the
isolate after the top-level code ran, and refuses randomness and crypto state in it.

Does the key belong to the certificate? When the PKCS#8 carries its public key (OpenSSL
and ``cryptography`` write it), the factory compares it with the leaf's, with no crypto.
Whether it does or not, the first use signs a fixed challenge and verifies it with the
leaf's public key: that proves the private key itself matches (a PKCS#8's public key field
is only a claim), and keeps the key non-extractable, which exporting it as a JWK to compare
the point would not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from js import crypto
from pyodide.ffi import to_js

from ...provenance.certificates import (
    SigningChain,
    SigningIdentityError,
    private_key_der,
    private_key_public_point,
)
from ..ffi import js_bytes, js_object

__all__ = [
    "CHAIN_VARIABLE",
    "KEY_VARIABLE",
    "WorkersClaimSigner",
    "claim_signer_from_env",
]

KEY_VARIABLE = "C2PA_SIGNING_KEY"
CHAIN_VARIABLE = "C2PA_CERTIFICATE_CHAIN"
ES256_SIGNATURE_BYTES = 64
# Signed and verified once per isolate, when the key is imported.
MATCH_CHALLENGE = b"Fluxgate: is this the signing certificate's private key?"

_KEY_ALGORITHM = {"name": "ECDSA", "namedCurve": "P-256"}
_SIGNATURE_ALGORITHM = {"name": "ECDSA", "hash": "SHA-256"}


class WorkersClaimSigner:
    """ES256 with ``crypto.subtle``. The chain was checked when it was read; each signature
    checks it is still current at ``clock()`` (an isolate may outlive its certificate)."""

    def __init__(
        self, key_der: bytes, chain: SigningChain, clock: Callable[[], float] = time.time
    ) -> None:
        self._key_der = key_der
        self._chain = chain
        self._clock = clock
        self._private: Any = None  # CryptoKeys, imported on first use
        self._public: Any = None

    @property
    def chain(self) -> tuple[bytes, ...]:
        return self._chain.der

    async def sign(self, message: bytes) -> bytes:
        self._chain.check_current(self._clock())
        key = await self._private_key()
        signature = await crypto.subtle.sign(
            js_object(_SIGNATURE_ALGORITHM), key, js_bytes(message)
        )
        return bytes(signature.to_bytes())

    async def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != ES256_SIGNATURE_BYTES:
            return False
        verified = await crypto.subtle.verify(
            js_object(_SIGNATURE_ALGORITHM),
            await self._public_key(),
            js_bytes(signature),
            js_bytes(message),
        )
        return verified is True

    async def _public_key(self) -> Any:
        if self._public is None:
            try:
                self._public = await crypto.subtle.importKey(
                    "spki", js_bytes(self._chain.leaf_spki), js_object(_KEY_ALGORITHM), False,
                    to_js(["verify"]),
                )  # fmt: skip
            except Exception as exc:  # a DataError: checked already, so not expected
                raise SigningIdentityError(
                    f"WebCrypto refused the signing certificate's key: {type(exc).__name__}"
                ) from None
        return self._public

    async def _private_key(self) -> Any:
        """The signing key, imported and proven to be the leaf's on first use. Two first
        signatures at once both import it; either key is the same key."""
        if self._private is None:
            try:
                key = await crypto.subtle.importKey(
                    "pkcs8", js_bytes(self._key_der), js_object(_KEY_ALGORITHM), False,
                    to_js(["sign"]),
                )  # fmt: skip
            except Exception as exc:  # the name only: a message might quote the input
                raise SigningIdentityError(
                    f"WebCrypto refused the signing key: {type(exc).__name__}"
                ) from None
            challenge = js_bytes(MATCH_CHALLENGE)
            proof = await crypto.subtle.sign(js_object(_SIGNATURE_ALGORITHM), key, challenge)
            matches = await crypto.subtle.verify(
                js_object(_SIGNATURE_ALGORITHM), await self._public_key(), proof, challenge
            )
            if matches is not True:
                raise SigningIdentityError(
                    f"{KEY_VARIABLE} does not match the signing certificate's public key"
                )
            self._private = key
        return self._private


def claim_signer_from_env(env: Any, now: float | None = None) -> WorkersClaimSigner | None:
    """The signer for the two secrets, or ``None`` when neither is set (images are then
    stored without Content Credentials). Raises
    :class:`~fluxgate.provenance.certificates.SigningIdentityError`, naming the secret and
    what is wrong with it, when one is set without the other or either is unusable.

    Call it while serving an event, not at import: the chain is checked at ``now`` (the
    current time by default), and the deploy-time snapshot's clock is not the time."""
    key_pem, chain_pem = _secret(env, KEY_VARIABLE), _secret(env, CHAIN_VARIABLE)
    if key_pem is None and chain_pem is None:
        return None
    if key_pem is None or chain_pem is None:
        missing = CHAIN_VARIABLE if key_pem else KEY_VARIABLE
        given = KEY_VARIABLE if key_pem else CHAIN_VARIABLE
        raise SigningIdentityError(f"{given} is set but {missing} is not: set both, or neither")
    try:
        chain = SigningChain.from_pem(chain_pem, time.time() if now is None else now)
    except SigningIdentityError as exc:
        raise type(exc)(f"{CHAIN_VARIABLE}: {exc}") from None
    try:
        key_der = private_key_der(key_pem)
        point = private_key_public_point(key_der)
    except SigningIdentityError as exc:
        raise SigningIdentityError(f"{KEY_VARIABLE}: {exc}") from None
    if point is not None and point != chain.leaf_public_point:
        raise SigningIdentityError(
            f"{KEY_VARIABLE} does not match the signing certificate's public key "
            f"(the first certificate of {CHAIN_VARIABLE})"
        )
    return WorkersClaimSigner(key_der, chain)


def _secret(env: Any, name: str) -> str | None:
    value = getattr(env, name, None)
    return value if isinstance(value, str) and value.strip() else None
