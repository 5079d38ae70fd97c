"""The signing identity C2PA claims are signed with: a port, one adapter per runtime.

On Workers the private key never leaves WebCrypto (``crypto.subtle.sign``, ECDSA P-256 with
SHA-256, whose raw ``r || s`` output is exactly what COSE's ES256 carries); locally it is
held by ``cryptography``. The core only ever sees the certificate chain and the signatures.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["ClaimSigner"]


class ClaimSigner(Protocol):
    """An ES256 signer with its X.509 chain (the operator's, or the local development one)."""

    @property
    def chain(self) -> tuple[bytes, ...]:
        """The certificates as DER, the signing (leaf) certificate first, then its
        intermediates; never the trust anchor (C2PA's ``x5chain``)."""
        ...

    async def sign(self, message: bytes) -> bytes:
        """The ES256 signature of ``message`` (ECDSA P-256, SHA-256) as raw ``r || s``
        (64 bytes, each half big-endian and zero-padded): COSE's encoding, not DER."""
        ...

    async def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (raw ``r || s``) is the leaf key's over ``message``."""
        ...
