"""Signed webhooks, in the style of the Standard Webhooks specification.

Each delivery is a POST of a JSON body with three headers:

- ``webhook-id``: the idempotency id (the same on every retry of one event);
- ``webhook-timestamp``: Unix seconds when this attempt was signed;
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(secret, "{id}.{timestamp}.{body}")>``,
  space-separated when several secrets are valid (during a key rotation).

The secret is per API key (``whsec_...``, from ``GET /v1/webhooks/secret``), derived
from the server's URL-signing keyring: no key can forge another key's webhooks. Receivers
verify with :func:`verify` (it checks the signature in constant time and refuses
timestamps more than five minutes off, against replays). Pydantic-free.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import time
from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

from .errors import ApiError
from .signing import UrlSigner

SECRET_PREFIX = "whsec_"  # noqa: S105 - the public prefix of the format
TOLERANCE_SECONDS = 300
_PURPOSE = "webhook-secret-v1"


class WebhookVerificationError(ValueError):
    pass


def secrets_for_key(signer: UrlSigner, key_id: str) -> list[str]:
    """Every valid secret of a key, current first (one per URL-signing key)."""
    out = []
    for mac in signer.keyed_macs(_PURPOSE, key_id):
        raw = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        out.append(SECRET_PREFIX + base64.b64encode(raw).decode())
    return out


def _secret_bytes(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookVerificationError("malformed webhook secret") from exc


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secrets: list[str], message_id: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, message_id, timestamp, body) for s in secrets),
        "user-agent": "fluxgate-webhooks/1",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery and return its parsed JSON payload; raise on any mismatch.

    ``headers`` may be any case-insensitive mapping or a plain dict with lower-case names.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp or not signatures:
        raise WebhookVerificationError("missing webhook headers")
    if not timestamp.isdigit():
        raise WebhookVerificationError("malformed webhook timestamp")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        raise WebhookVerificationError("webhook timestamp outside the tolerance")
    expected = sign(secret, message_id, int(timestamp), body)
    for candidate in signatures.split():
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return json.loads(body)
    raise WebhookVerificationError("no matching webhook signature")


_BLOCKED_NAMES = ("localhost", ".localhost", ".local", ".internal", ".home.arpa")


def check_url(url: str, *, allow_loopback: bool = False) -> str:
    """Accept https URLs to public hosts (and, if allowed, http(s) to loopback)."""

    def refuse(why: str) -> ApiError:
        return ApiError(400, "invalid_webhook_url", f"webhook_url {why}.", param="webhook_url")

    if len(url) > 2048:
        raise refuse("is too long")
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host or parts.username or parts.password:
        raise refuse("must be an absolute URL without credentials")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    loopback = host == "localhost" or (address is not None and address.is_loopback)
    if loopback and allow_loopback:
        if parts.scheme not in ("http", "https"):
            raise refuse("must use http or https")
        return url
    if parts.scheme != "https":
        raise refuse("must use https")
    if host == "localhost" or host.endswith(_BLOCKED_NAMES):
        raise refuse("must name a public host")
    if address is not None and not address.is_global:
        raise refuse("must not be a private, loopback or link-local address")
    return url


class HttpPoster(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        """POST and return the status; raise on network failure or timeout."""
        ...
