"""Short-lived client tokens for mobile apps.

A backend that holds an API key mints a token for one end user (``sub``) and hands it to
the app, which calls Fluxgate directly: the API key never reaches the device. A token is
``fgt_<payload>.<mac>``: base64url JSON (key id, subject, audience, scopes, expiry) and an
HMAC over it with the URL-signing keyring under its own purpose string, so rotating the
signing keys rotates tokens too. Tokens are stateless; revoking the parent key kills
them, since every use loads the key record. A token also names the API key that minted it
(``t``: a prefix of that key's SHA-256), so rotating the key ends its tokens with the old
key's grace period, at once for ``grace_seconds: 0``. A token answered for a sign-in
(``POST /v1/tokens/exchange``) names no minting key: only revoking the key ends it early.
"""

from __future__ import annotations

import binascii
import hmac
import json
import re
from dataclasses import dataclass

from ..delivery.signing import UrlSigner
from ..errors import ApiError, unauthorized
from ..imaging.b64 import urlsafe_decode, urlsafe_encode

TOKEN_PREFIX = "fgt_"  # noqa: S105 - a public prefix
_PURPOSE = "client-token-v1"
# An end user's id (client-token subjects, OpenAI's `user`): what may go into cache keys,
# records and rate-limit keys without escaping (never "/", the owner separator). "|" is
# Auth0's provider separator ("auth0|65f…"). The HTTP schemas use these two.
SUBJECT_PATTERN = r"^[A-Za-z0-9._:@|-]+$"
SUBJECT_MAX_LENGTH = 128
_MINTER = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True)
class ClientToken:
    key_id: str
    subject: str
    audience: str
    scopes: tuple[str, ...]
    issued_at: int
    expires_at: int
    minted_by: str | None = None  # hex prefix of the minting API key's SHA-256
    # Answered by ``POST /v1/tokens/exchange`` for a sign-in, not minted by an API key: a
    # rotation of the key does not end it (revoking the key does).
    exchanged: bool = False


def mint(signer: UrlSigner, token: ClientToken) -> str:
    payload = urlsafe_encode(
        json.dumps(
            {
                "k": token.key_id,
                "sub": token.subject,
                "aud": token.audience,
                "scp": list(token.scopes),
                "iat": token.issued_at,
                "exp": token.expires_at,
                "kid": signer.current_kid,
                **({"t": token.minted_by} if token.minted_by else {}),
                **({"x": 1} if token.exchanged else {}),
            },
            separators=(",", ":"),
        ).encode()
    )
    mac = signer.keyed_mac(_PURPOSE, payload)
    return f"{TOKEN_PREFIX}{payload}.{mac}"


def _invalid(message: str = "The client token is not valid.") -> ApiError:
    return unauthorized("invalid_token", message, invalid_token=True)


def verify(signer: UrlSigner, raw: str, *, audience: str, now: float) -> ClientToken:
    """Check MAC, audience and expiry; raise a 401 :class:`ApiError` otherwise."""
    body = raw.removeprefix(TOKEN_PREFIX)
    payload, sep, mac = body.partition(".")
    if not sep or len(raw) > 2048:
        raise _invalid()
    try:
        claims = json.loads(urlsafe_decode(payload))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise _invalid() from None
    if not isinstance(claims, dict):
        raise _invalid()
    expected = signer.keyed_mac(_PURPOSE, payload, kid=str(claims.get("kid", "")))
    if expected is None or not hmac.compare_digest(expected.encode(), mac.encode()):
        raise _invalid()
    minted_by = claims.get("t")
    if minted_by is not None and not (isinstance(minted_by, str) and _MINTER.fullmatch(minted_by)):
        raise _invalid()
    try:
        token = ClientToken(
            key_id=str(claims["k"]),
            subject=str(claims["sub"]),
            audience=str(claims["aud"]),
            scopes=tuple(str(s) for s in claims["scp"]),
            issued_at=int(claims["iat"]),
            expires_at=int(claims["exp"]),
            minted_by=minted_by,
            exchanged=claims.get("x") == 1,
        )
    except (KeyError, TypeError, ValueError):
        raise _invalid() from None
    if token.audience != audience:
        raise _invalid("The client token is for another audience.")
    if token.expires_at <= now:
        raise unauthorized(
            "expired_token", "The client token has expired; mint a new one.", invalid_token=True
        )
    return token
