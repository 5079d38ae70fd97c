"""API keys, client tokens and the principal a request acts as.

A key is a random bearer token shown once; only its SHA-256 is stored, so a KV dump or a
log line reveals no usable key. KV layout:

- ``apikey:<sha256>`` — what a request reads (one KV read per request): the key's record,
  plus ``token_expires_at`` when this token was rotated out and is in its grace period.
- ``apikeyid:<id>`` — the canonical record and the digests of its live tokens; its KV
  metadata is a summary, so listing keys needs one KV call per page.

Changes (revoke, rotate, update) rewrite every live digest entry. KV is eventually
consistent: a change can take up to about a minute to reach every location.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ApiError
from .signing import UrlSigner
from .storage import KVStore
from .tokens import TOKEN_PREFIX as CLIENT_TOKEN_PREFIX
from .tokens import verify as verify_client_token

TOKEN_PREFIX = "fgk_"  # noqa: S105 (a public prefix, not a secret)
_REALM = 'Bearer realm="fluxgate"'

# Key records are read through KV's edge cache: a revocation can take this long (plus KV's
# own propagation) to reach every location.
KEY_CACHE_TTL = 60

SCOPE_GENERATE = "images:generate"
SCOPE_READ = "images:read"
SCOPE_ADMIN = "admin"
ALL_SCOPES = (SCOPE_GENERATE, SCOPE_READ, SCOPE_ADMIN)
DEFAULT_SCOPES = (SCOPE_GENERATE, SCOPE_READ)


@dataclass
class KeyRecord:
    id: str
    name: str
    created: int
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    tier: str | None = None
    expires_at: int | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    revoked: bool = False
    revoked_at: int | None = None

    def public(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def summary(self) -> dict[str, Any]:
        """What KV metadata holds for listings (metadata is capped at 1 KiB)."""
        return {k: v for k, v in asdict(self).items() if k != "overrides"}


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key, and for client tokens the end user it was minted for."""

    key: KeyRecord
    scopes: frozenset[str]
    subject: str | None = None
    via_token: bool = False

    def as_end_user(self, user: str | None) -> Principal:
        """An API-key caller acting for one of its end users (OpenAI's ``user`` field).

        A client token already names its end user; ``user`` cannot change it."""
        if user is None or self.via_token:
            return self
        return Principal(self.key, self.scopes, subject=user)

    @property
    def scope_id(self) -> str:
        """Cache, rate-limit and record owner identity: per end user for client tokens."""
        return self.key.id if self.subject is None else f"{self.key.id}/{self.subject}"

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise ApiError(
                403,
                "insufficient_scope",
                f"This credential lacks the '{scope}' scope.",
                headers={
                    "WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{scope}"'
                },
            )


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


def _check_usable(record: KeyRecord, now: float) -> None:
    if record.revoked:
        raise unauthorized("revoked_api_key", "The API key was revoked.", invalid_token=True)
    if record.expires_at is not None and record.expires_at <= now:
        raise unauthorized("expired_api_key", "The API key has expired.", invalid_token=True)


class KeyStore:
    def __init__(self, kv: KVStore, clock: Callable[[], float] = time.time) -> None:
        self._kv = kv
        self._clock = clock

    # -- reading ----------------------------------------------------------------------------

    async def authenticate(
        self,
        authorization: str | None,
        *,
        signer: UrlSigner | None = None,
        audience: str = "fluxgate",
    ) -> Principal:
        """Resolve an API key or a client token to a :class:`Principal` (one KV read)."""
        token = bearer_token(authorization)
        if token is None:
            raise unauthorized(
                "missing_api_key",
                "Send your API key as 'Authorization: Bearer <key>'.",
                invalid_token=False,
            )
        now = self._clock()
        if token.startswith(CLIENT_TOKEN_PREFIX) and signer is not None:
            claims = verify_client_token(signer, token, audience=audience, now=now)
            record = await self.get(claims.key_id)
            if record is None:
                raise unauthorized(
                    "invalid_token", "The client token is not valid.", invalid_token=True
                )
            _check_usable(record, now)
            scopes = frozenset(claims.scopes) & frozenset(record.scopes) - {SCOPE_ADMIN}
            return Principal(record, scopes, subject=claims.subject, via_token=True)

        # A token of absurd length cannot be a key; refuse it without touching KV.
        raw = (
            await self._kv.get(f"apikey:{digest(token)}", cache_ttl=KEY_CACHE_TTL)
            if len(token) < 256
            else None
        )
        if raw is None:
            raise unauthorized("invalid_api_key", "The API key is not valid.", invalid_token=True)
        data = json.loads(raw)
        token_expires_at = data.pop("token_expires_at", None)
        record = KeyRecord.from_dict(data)
        _check_usable(record, now)
        if token_expires_at is not None and token_expires_at <= now:
            raise unauthorized(
                "expired_api_key",
                "This key was rotated and its grace period has ended; use the new key.",
                invalid_token=True,
            )
        return Principal(record, frozenset(record.scopes))

    async def _index(self, key_id: str) -> dict[str, Any] | None:
        if not key_id.startswith("key_") or len(key_id) > 64:
            return None
        raw = await self._kv.get(f"apikeyid:{key_id}")
        return None if raw is None else json.loads(raw)

    async def get(self, key_id: str) -> KeyRecord | None:
        index = await self._index(key_id)
        return None if index is None else KeyRecord.from_dict(index["record"])

    async def list(self) -> list[KeyRecord]:
        records: list[KeyRecord] = []
        cursor: str | None = None
        while True:
            page = await self._kv.list("apikeyid:", cursor=cursor)
            records.extend(KeyRecord.from_dict(e.metadata) for e in page.keys if e.metadata)
            if page.complete or not page.cursor:
                break
            cursor = page.cursor
        return sorted(records, key=lambda r: (r.created, r.id))

    # -- writing ----------------------------------------------------------------------------

    async def _save(self, record: KeyRecord, tokens: Iterable[dict[str, Any]]) -> None:
        """Write the canonical record, then every live token's copy of it."""
        now = self._clock()
        live = [t for t in tokens if t.get("expires_at") is None or t["expires_at"] > now]
        index = {"record": asdict(record), "tokens": live}
        await self._kv.put(f"apikeyid:{record.id}", json.dumps(index), metadata=record.summary())
        for entry in live:
            value = {**asdict(record), "token_expires_at": entry.get("expires_at")}
            await self._kv.put(f"apikey:{entry['hash']}", json.dumps(value))

    async def create(
        self,
        name: str,
        *,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        tier: str | None = None,
        expires_at: int | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> tuple[str, KeyRecord]:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(
            id="key_" + secrets.token_hex(8),
            name=name,
            created=int(self._clock()),
            scopes=sorted(set(scopes)),
            tier=tier,
            expires_at=expires_at,
            overrides=dict(overrides or {}),
        )
        await self._save(record, [{"hash": digest(token), "expires_at": None}])
        return token, record

    async def _load_for_change(self, key_id: str) -> tuple[KeyRecord, list[dict[str, Any]]]:
        index = await self._index(key_id)
        if index is None:
            raise ApiError(404, "not_found", f"No API key with id '{key_id}'.", param="id")
        return KeyRecord.from_dict(index["record"]), list(index.get("tokens", []))

    async def revoke(self, key_id: str) -> KeyRecord:
        record, tokens = await self._load_for_change(key_id)
        if not record.revoked:
            record.revoked = True
            record.revoked_at = int(self._clock())
            await self._save(record, tokens)
        return record

    async def update(self, key_id: str, changes: dict[str, Any]) -> KeyRecord:
        record, tokens = await self._load_for_change(key_id)
        if record.revoked:
            raise ApiError(409, "key_revoked", "A revoked key cannot be changed.")
        for name, value in changes.items():
            setattr(record, name, value)
        await self._save(record, tokens)
        return record

    async def rotate(self, key_id: str, grace_seconds: int) -> tuple[str, KeyRecord]:
        """Issue a new token for the same key; old tokens stay valid for ``grace_seconds``."""
        record, tokens = await self._load_for_change(key_id)
        if record.revoked:
            raise ApiError(409, "key_revoked", "A revoked key cannot be rotated.")
        until = int(self._clock()) + grace_seconds
        for entry in tokens:
            if entry.get("expires_at") is None or entry["expires_at"] > until:
                entry["expires_at"] = until
        for entry in tokens:
            if entry["expires_at"] <= self._clock():
                await self._kv.delete(f"apikey:{entry['hash']}")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await self._save(record, [*tokens, {"hash": digest(token), "expires_at": None}])
        return token, record


def check_admin(authorization: str | None, admin_token: str | None) -> bool:
    """True for the admin token (constant-time); False when the bearer is something else.

    Raises when no credential is sent, or when admin is off and nothing else could pass.
    """
    token = bearer_token(authorization)
    if token is None:
        raise unauthorized(
            "missing_admin_token", "Send the admin token as a bearer token.", invalid_token=False
        )
    return bool(admin_token) and hmac.compare_digest(token.encode(), (admin_token or "").encode())
