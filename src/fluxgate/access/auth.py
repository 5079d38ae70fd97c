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
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..delivery.signing import UrlSigner
from ..errors import BEARER_REALM, ApiError, unauthorized
from ..store import keyspace
from ..store.ports import KVStore
from .tokens import TOKEN_PREFIX as CLIENT_TOKEN_PREFIX
from .tokens import ClientToken
from .tokens import verify as verify_client_token

TOKEN_PREFIX = "fgk_"  # noqa: S105 (a public prefix, not a secret)

# Key records are read through KV's edge cache: a revocation can take this long (plus KV's
# own propagation) to reach every location.
KEY_CACHE_TTL = 60

# The latest instant a key may expire at: 9999-12-31T23:59:59Z, the last second every date
# library (and a JavaScript Date) can represent. Later values are refused, not clamped.
MAX_TIMESTAMP = 253_402_300_799

# A key's summary (name included) is its KV metadata, which KV caps at 1 KiB. A name is
# bounded in characters and in its JSON form (what the metadata stores), so that every
# summary fits whatever the script: 100 emoji would take 1,200 bytes escaped.
MAX_NAME_CHARS = 100
MAX_NAME_JSON_BYTES = 400

# A client token names the API key that minted it by this many hex digits of the key's
# SHA-256 (what KV already stores), so a rotation can end the tokens of the old key.
MINTER_DIGITS = 16

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
    rotated_at: int | None = None
    # Whose sign-ins the key exchanges for client tokens, and App Check (sign_in_config.py):
    # the validated configuration, expanded, as JSON; none: no exchange.
    sign_in: dict[str, Any] | None = None

    def public(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "rotated_at"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyRecord:
        return cls(**{k: v for k, v in data.items() if k in _KEY_FIELDS})

    def summary(self) -> dict[str, Any]:
        """What KV metadata holds for listings (metadata is capped at 1 KiB)."""
        return {k: v for k, v in asdict(self).items() if k not in ("overrides", "sign_in")}


# Its field names, read once: ``dataclasses.fields`` walks every field on each call, and
# a record is read on every request.
_KEY_FIELDS = frozenset(f.name for f in fields(KeyRecord))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: a key, and for client tokens the end user it was minted for."""

    key: KeyRecord
    scopes: frozenset[str]
    subject: str | None = None
    via_token: bool = False
    credential: str | None = None  # SHA-256 of the API key presented (None for tokens)
    # A rotated-out API key in its grace period: when the grace ends. It still generates,
    # but reads nothing that outlives it (the new webhook secret).
    grace_until: int | None = None

    def as_end_user(self, user: str | None) -> Principal:
        """An API-key caller acting for one of its end users (OpenAI's ``user`` field).

        A client token already names its end user; ``user`` cannot change it."""
        if user is None or self.via_token:
            return self
        return Principal(
            self.key,
            self.scopes,
            subject=user,
            credential=self.credential,
            grace_until=self.grace_until,
        )

    @property
    def minter(self) -> str | None:
        """What a client token minted by this caller records as its minting key."""
        return None if self.credential is None else self.credential[:MINTER_DIGITS]

    @property
    def scope_id(self) -> str:
        """Cache, rate-limit and record owner identity: per end user for client tokens."""
        return self.key.id if self.subject is None else f"{self.key.id}/{self.subject}"

    def owns(self, owner: str) -> bool:
        """Whether something owned by ``owner`` (a scope id) is this caller's to read: its
        own, or, for an API key acting for itself, any of its end users'."""
        return owner == self.scope_id or (
            self.subject is None and owner.startswith(self.key.id + "/")
        )

    def require_current_key(self, what: str) -> None:
        """Refuse a rotated-out API key (in its grace period) what would outlive it:
        ``403 rotated_api_key``. The grace lets old deployments keep generating while the
        new key rolls out; it does not hand the old key the new key's secrets."""
        if self.grace_until is not None:
            raise ApiError(
                403,
                "rotated_api_key",
                f"This API key was rotated; only the new key can read {what}.",
            )

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            challenge = f'{BEARER_REALM}, error="insufficient_scope"'
            raise ApiError(
                403,
                "insufficient_scope",
                f"This credential lacks the '{scope}' scope.",
                headers={"WWW-Authenticate": f'{challenge}, scope="{scope}"'},
            )


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def invalid_field(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request", f"Invalid request: {param}: {message}.", param=param)


def check_name(name: str) -> None:
    """A key name fits its KV metadata and every JSON encoder (no lone surrogates)."""
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise invalid_field("name", f"must be 1-{MAX_NAME_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in name):
        raise invalid_field("name", "must not contain control characters or lone surrogates")
    if len(json.dumps(name)) - 2 > MAX_NAME_JSON_BYTES:
        raise invalid_field(
            "name", f"takes more than {MAX_NAME_JSON_BYTES} bytes as JSON; use a shorter name"
        )


def check_expiry(expires_at: int | None, param: str = "expires_at") -> None:
    if expires_at is not None and not 0 <= expires_at <= MAX_TIMESTAMP:
        raise invalid_field(param, f"must be a Unix time between 0 and {MAX_TIMESTAMP}")


def expiry_in(seconds: int, now: float) -> int:
    """``now + seconds`` as an expiry, refused (``param: expires_in_seconds``) past the
    latest representable instant."""
    if seconds > MAX_TIMESTAMP - int(now):
        raise invalid_field("expires_in_seconds", f"ends after {MAX_TIMESTAMP} (year 9999)")
    return int(now) + seconds


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
            index = await self._index(claims.key_id)
            if index is None:
                raise unauthorized(
                    "invalid_token", "The client token is not valid.", invalid_token=True
                )
            record = KeyRecord.from_dict(index["record"])
            _check_usable(record, now)
            _check_minter(claims, record, index.get("tokens", []), now)
            scopes = frozenset(claims.scopes) & frozenset(record.scopes) - {SCOPE_ADMIN}
            return Principal(record, scopes, subject=claims.subject, via_token=True)

        # A token of absurd length cannot be a key; refuse it without touching KV.
        raw = (
            await self._kv.get(keyspace.api_key(digest(token)), cache_ttl=KEY_CACHE_TTL)
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
        return Principal(
            record,
            frozenset(record.scopes),
            credential=digest(token),
            grace_until=None if token_expires_at is None else int(token_expires_at),
        )

    async def principal_for(
        self, key_id: str, scopes: Iterable[str], subject: str | None
    ) -> Principal:
        """The principal an accepted request acted as, again, for work done later (an
        async job): refused if the key has since been deleted, revoked or has expired, and
        never with a scope the key no longer has."""
        record = await self.get(key_id)
        if record is None:
            raise ApiError(401, "invalid_api_key", "The job's API key no longer exists.")
        _check_usable(record, self._clock())
        return Principal(record, frozenset(scopes) & frozenset(record.scopes), subject=subject)

    async def _index(self, key_id: str) -> dict[str, Any] | None:
        if not key_id.startswith("key_") or len(key_id) > 64:
            return None
        raw = await self._kv.get(keyspace.api_key_id(key_id))
        return None if raw is None else json.loads(raw)

    async def get(self, key_id: str) -> KeyRecord | None:
        index = await self._index(key_id)
        return None if index is None else KeyRecord.from_dict(index["record"])

    async def list_all(self) -> list[KeyRecord]:
        """Every key, oldest first (the CLI's listing; the HTTP API pages)."""
        records: list[KeyRecord] = []
        cursor: str | None = None
        while True:
            page, cursor = await self.page(1000, cursor)
            records.extend(page)
            if cursor is None:
                break
        return sorted(records, key=lambda r: (r.created, r.id))

    async def page(self, limit: int, cursor: str | None) -> tuple[list[KeyRecord], str | None]:
        """Up to ``limit`` keys in id order, and the cursor of the next page (``None`` at
        the end). The cursor is KV's own; one the store refuses is a 400 on ``cursor``."""
        try:
            page = await self._kv.list(keyspace.API_KEY_ID, limit=limit, cursor=cursor)
        except Exception as exc:  # an invalid cursor: Workers KV throws, whatever the cause
            if cursor is None:
                raise
            raise invalid_field("cursor", "not a cursor this listing returned") from exc
        records = [KeyRecord.from_dict(e.metadata) for e in page.keys if e.metadata]
        return records, None if page.complete or not page.cursor else page.cursor

    # -- writing ----------------------------------------------------------------------------

    async def _save(self, record: KeyRecord, tokens: Iterable[dict[str, Any]]) -> None:
        """Write the canonical record, then every live token's copy of it."""
        now = self._clock()
        live = [t for t in tokens if t.get("expires_at") is None or t["expires_at"] > now]
        index = {"record": asdict(record), "tokens": live}
        await self._kv.put(
            keyspace.api_key_id(record.id), json.dumps(index), metadata=record.summary()
        )
        for entry in live:
            value = {**asdict(record), "token_expires_at": entry.get("expires_at")}
            await self._kv.put(keyspace.api_key(entry["hash"]), json.dumps(value))

    async def create(
        self,
        name: str,
        *,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        tier: str | None = None,
        expires_at: int | None = None,
        overrides: dict[str, Any] | None = None,
        sign_in: dict[str, Any] | None = None,
    ) -> tuple[str, KeyRecord]:
        check_name(name)
        check_expiry(expires_at)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(
            id="key_" + secrets.token_hex(8),
            name=name,
            created=int(self._clock()),
            scopes=sorted(set(scopes)),
            tier=tier,
            expires_at=expires_at,
            overrides=dict(overrides or {}),
            sign_in=sign_in,
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
        if "name" in changes:
            check_name(changes["name"])
        if "expires_at" in changes:
            check_expiry(changes["expires_at"])
        if "scopes" in changes:
            changes = {**changes, "scopes": sorted(set(changes["scopes"]))}
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
                await self._kv.delete(keyspace.api_key(entry["hash"]))
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record.rotated_at = int(self._clock())
        await self._save(record, [*tokens, {"hash": digest(token), "expires_at": None}])
        return token, record


def _check_minter(
    claims: ClientToken, record: KeyRecord, tokens: list[dict[str, Any]], now: float
) -> None:
    """A client token lives no longer than the API key that minted it.

    Rotation gives the old key a grace period (``0``: none); its tokens end with it, while
    the new key's keep working. A token from before tokens named their minting key is
    ended by any rotation after it was issued.
    """
    if claims.exchanged:
        return
    if claims.minted_by is None:
        ended = record.rotated_at is not None and claims.issued_at <= record.rotated_at
    else:
        minter = next((t for t in tokens if t["hash"].startswith(claims.minted_by)), None)
        until = None if minter is None else minter.get("expires_at")
        ended = minter is None or (until is not None and until <= now)
    if ended:
        raise unauthorized(
            "expired_token",
            "The API key that minted this client token was rotated; mint a new one.",
            invalid_token=True,
        )


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
