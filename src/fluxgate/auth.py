"""API keys: random bearer tokens of which only a SHA-256 digest is ever stored.

A key is shown once, at creation. Lookups hash the presented token, so a leaked KV dump
or log line reveals no usable key. Two KV entries per key: ``apikey:<digest>`` (what a
request reads) and ``apikeyid:<id>`` (the admin index, with a summary in its metadata so
that listing needs one KV call per page).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass

from .errors import ApiError
from .storage import KVStore

TOKEN_PREFIX = "fgk_"  # noqa: S105 (a public prefix, not a secret)
_REALM = 'Bearer realm="fluxgate"'


@dataclass
class KeyRecord:
    id: str
    name: str
    created: int
    revoked: bool = False
    revoked_at: int | None = None

    def public(self) -> dict[str, object]:
        return asdict(self)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def unauthorized(code: str, message: str, *, invalid_token: bool) -> ApiError:
    challenge = f'{_REALM}, error="invalid_token"' if invalid_token else _REALM
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class KeyStore:
    def __init__(self, kv: KVStore) -> None:
        self._kv = kv

    async def create(self, name: str) -> tuple[str, KeyRecord]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(id="key_" + secrets.token_hex(8), name=name, created=int(time.time()))
        hashed = digest(token)
        await self._kv.put(f"apikey:{hashed}", json.dumps(asdict(record)))
        await self._kv.put(f"apikeyid:{record.id}", hashed, metadata=asdict(record))
        return token, record

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized(
                "missing_api_key",
                "Send your API key as 'Authorization: Bearer <key>'.",
                invalid_token=False,
            )
        # A token of absurd length cannot be a key; refuse it without touching KV.
        raw = await self._kv.get(f"apikey:{digest(token)}") if len(token) < 256 else None
        if raw is None:
            raise unauthorized("invalid_api_key", "The API key is not valid.", invalid_token=True)
        record = KeyRecord(**json.loads(raw))
        if record.revoked:
            raise unauthorized("revoked_api_key", "The API key was revoked.", invalid_token=True)
        return record

    async def list(self) -> list[KeyRecord]:
        records: list[KeyRecord] = []
        cursor: str | None = None
        while True:
            page = await self._kv.list("apikeyid:", cursor=cursor)
            records.extend(KeyRecord(**entry.metadata) for entry in page.keys if entry.metadata)
            if page.complete or not page.cursor:
                break
            cursor = page.cursor
        return sorted(records, key=lambda r: (r.created, r.id))

    async def revoke(self, key_id: str) -> KeyRecord:
        hashed = await self._kv.get(f"apikeyid:{key_id}") if len(key_id) < 64 else None
        raw = await self._kv.get(f"apikey:{hashed}") if hashed else None
        if raw is None:
            raise ApiError(404, "not_found", f"No API key with id '{key_id}'.", param="id")
        record = KeyRecord(**json.loads(raw))
        if not record.revoked:
            record.revoked = True
            record.revoked_at = int(time.time())
            await self._kv.put(f"apikey:{hashed}", json.dumps(asdict(record)))
            await self._kv.put(f"apikeyid:{record.id}", hashed or "", metadata=asdict(record))
        return record


def check_admin(authorization: str | None, admin_token: str | None) -> None:
    """Constant-time check of the admin bearer token; admin is off when none is set."""
    if not admin_token:
        raise ApiError(
            403, "admin_disabled", "Admin endpoints are disabled: no admin token is set."
        )
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "missing_admin_token", "Send the admin token as a bearer token.", invalid_token=False
        )
    if not hmac.compare_digest(token.encode(), admin_token.encode()):
        raise unauthorized(
            "invalid_admin_token", "The admin token is not valid.", invalid_token=True
        )
