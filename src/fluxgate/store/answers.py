"""Stored answers for ``Idempotency-Key``: a retried POST replays the first answer.

A client that lost a response retries with the same key; it must get the first answer,
not a second (paid) generation. So a key is *claimed* before the work starts, and only one
of any number of concurrent claimers may start it: a dead row is deleted first (past its
retention, or an in-progress claim whose lease ran out because its request crashed), then
the claim is one ``INSERT ... ON CONFLICT DO NOTHING`` whose ``RETURNING`` tells the
claimer whether it won. The others read the row: the stored answer, "still running", or
"this key was used for another request". A claim's statements run as one: in one Durable
Object per API key on Workers (a single writer, one synchronous call) and in a local SQLite
file (under ``BEGIN IMMEDIATE``: exact across processes too).

Only the current holder's token completes or releases a claim, so a request that lost its
lease never overwrites the answer of the request that took over. Rows are remembered for
:data:`RETENTION_SECONDS` from the first request and pruned, a bounded batch at a time, by
later claims (an index on ``expires``).

Bounded. Every new key stores a row for a day, so each API key (``account``) may hold at
most :class:`Caps` rows and bytes: a claim that would pass either is refused
(``"full"``, with the seconds until the key's oldest row expires). The counts are kept
per account in ``idempotency_usage`` by triggers on every insert, update and delete
(prunes included), and the check is the claim's own ``INSERT ... SELECT ... WHERE``: exact
under concurrency, O(1) however many rows a key holds. A running claim counts
:data:`ANSWER_RESERVE` bytes for the answer it will store, so that claims running at once
cannot together pass the byte cap; its row is sized to the answer when it completes.
Pydantic-free: the Durable Object imports it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

RETENTION_SECONDS = 24 * 3600  # a key is remembered 24 h from its first request
LEASE_SECONDS = 600  # an in-progress claim older than this may be taken over (its request crashed)
PRUNE_BATCH = 16  # expired rows deleted per claim: more than a claim adds, so they never pile up
# The bytes a running claim holds for its answer (a generation's body is under 1 KB; a job's
# or one with variant URLs a few): the byte cap is exact for answers up to this size.
ANSWER_RESERVE = 4096
ROW_OVERHEAD = 64  # the numbers, the state, and the index entries of a row, roughly (as MIGRATE)

RUNNING, DONE = "running", "done"  # a row's state

ClaimState = Literal["started", "done", "running", "mismatch", "full"]
CLAIM_STATES: tuple[ClaimState, ...] = ("started", "done", "running", "mismatch", "full")

TABLE = "idempotency_keys"
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS idempotency_keys ("
    " account TEXT NOT NULL, scope TEXT NOT NULL, idem_key TEXT NOT NULL,"
    " fingerprint TEXT NOT NULL, token TEXT NOT NULL, state TEXT NOT NULL,"
    " created REAL NOT NULL, expires REAL NOT NULL, lease_until REAL NOT NULL,"
    " status INTEGER, body TEXT, headers TEXT, image_key TEXT, size INTEGER NOT NULL,"
    " PRIMARY KEY (scope, idem_key))"
)
USAGE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS idempotency_usage ("
    " account TEXT PRIMARY KEY, rows INTEGER NOT NULL, bytes INTEGER NOT NULL)"
)
# The per-account counts follow the rows whatever changes them.
TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS idempotency_keys_added AFTER INSERT ON idempotency_keys"
    " BEGIN"
    " INSERT OR IGNORE INTO idempotency_usage (account, rows, bytes)"
    " VALUES (new.account, 0, 0);"
    " UPDATE idempotency_usage SET rows = rows + 1, bytes = bytes + new.size"
    " WHERE account = new.account;"
    " END",
    "CREATE TRIGGER IF NOT EXISTS idempotency_keys_removed AFTER DELETE ON idempotency_keys"
    " BEGIN"
    " UPDATE idempotency_usage SET rows = rows - 1, bytes = bytes - old.size"
    " WHERE account = old.account;"
    " END",
    "CREATE TRIGGER IF NOT EXISTS idempotency_keys_resized"
    " AFTER UPDATE OF size ON idempotency_keys"
    " BEGIN"
    " UPDATE idempotency_usage SET bytes = bytes - old.size + new.size"
    " WHERE account = new.account;"
    " END",
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry ON idempotency_keys (expires)",
    "CREATE INDEX IF NOT EXISTS idempotency_keys_by_account ON idempotency_keys (account, expires)",
)
# Rows of the table before caps (``idempotency``, no account or size) are moved over once.
LEGACY = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idempotency'"
MIGRATE = (
    "INSERT OR IGNORE INTO idempotency_keys"
    " (account, scope, idem_key, fingerprint, token, state, created, expires, lease_until,"
    " status, body, headers, image_key, size)"
    " SELECT CASE WHEN instr(scope, '/') > 0 THEN substr(scope, 1, instr(scope, '/') - 1)"
    " ELSE scope END,"
    " scope, idem_key, fingerprint, token, state, created, expires, lease_until,"
    " status, body, headers, image_key,"
    " 64 + length(CAST(scope AS BLOB)) + length(CAST(idem_key AS BLOB))"
    " + length(fingerprint) + length(token) + coalesce(length(CAST(body AS BLOB)), 0)"
    " + coalesce(length(CAST(headers AS BLOB)), 0)"
    " + coalesce(length(CAST(image_key AS BLOB)), 0)"
    " FROM idempotency",
    "DROP TABLE idempotency",
)
# A dead row (past its retention, or running past its lease: its request crashed) is
# removed before the claim, which then inserts like a first one.
TAKE_OVER = (
    "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ?"
    " AND (expires <= ? OR (state = ? AND lease_until <= ?))"
)
# The claim: insert when no live row stands and the account is within its caps; nothing
# is returned otherwise, so exactly one concurrent claimer sees its token.
CLAIM = (
    "INSERT INTO idempotency_keys"
    " (account, scope, idem_key, fingerprint, token, state, created, expires, lease_until,"
    " size)"
    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    " WHERE NOT EXISTS (SELECT 1 FROM idempotency_usage WHERE account = ?"
    " AND (rows >= ? OR bytes + ? > ?))"
    " ON CONFLICT (scope, idem_key) DO NOTHING"
    " RETURNING token"
)
READ = (
    "SELECT fingerprint, state, expires, lease_until, status, body, headers, image_key"
    " FROM idempotency_keys WHERE scope = ? AND idem_key = ?"
)
COMPLETE = (
    "UPDATE idempotency_keys"
    " SET state = ?, status = ?, body = ?, headers = ?, image_key = ?, size = size - ? + ?"
    " WHERE scope = ? AND idem_key = ? AND token = ? AND state = ? AND expires > ?"
    " RETURNING token"
)
RELEASE = (
    "DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND token = ? AND state = ?"
)
PRUNE = (
    "DELETE FROM idempotency_keys WHERE rowid IN"
    " (SELECT rowid FROM idempotency_keys WHERE expires <= ? ORDER BY expires LIMIT ?)"
)
PRUNE_ACCOUNT = (
    "DELETE FROM idempotency_keys WHERE rowid IN"
    " (SELECT rowid FROM idempotency_keys WHERE account = ? AND expires <= ?"
    " ORDER BY expires LIMIT ?) RETURNING 1"
)
OVER = "SELECT 1 FROM idempotency_usage WHERE (rows >= ? OR bytes + ? > ?) AND account = ?"
OLDEST = "SELECT min(expires) FROM idempotency_keys WHERE account = ? AND expires > ?"
CLAIM_ATTEMPTS = 3  # a row deleted between the insert and the read: claim again

Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str  # the JSON body text as first sent
    headers: dict[str, str]  # the response headers to replay
    # The object-store key whose base64 the service splices back in (b64_json answers, so
    # the image is not stored twice); None: ``body`` is the whole answer.
    image_key: str | None = None


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    response: StoredResponse | None = None  # set when state == "done"
    # "running": seconds until the running claim's lease ends; "full": until the account's
    # oldest row expires (>= 1 both)
    retry_after: int = 0


@dataclass(frozen=True)
class Caps:
    """The terms a claim is made on: what one API key's rows may add up to
    (``IDEMPOTENCY_MAX_KEYS``, ``IDEMPOTENCY_MAX_BYTES``), and how long a running claim
    holds before its request is presumed dead (``GENERATION_LEASE_SECONDS``: the same lease
    as the request's charge, so a retry that takes the claim over takes the charge over)."""

    rows: int
    bytes: int
    lease_seconds: float = LEASE_SECONDS


UNCAPPED = Caps(2**62, 2**62)


def claim_size(scope: str, key: str, fingerprint: str, token: str) -> int:
    """A running claim's bytes: its own, and :data:`ANSWER_RESERVE` for its answer."""
    return _meta_size(scope, key, fingerprint, token) + ANSWER_RESERVE


def answer_size(answer: StoredResponse) -> int:
    """The bytes an answer adds to its row (it replaces the claim's reserve)."""
    kept = (answer.body, headers_text(answer.headers), answer.image_key or "")
    return sum(len(text.encode()) for text in kept)


def _meta_size(*texts: str) -> int:
    return ROW_OVERHEAD + sum(len(t.encode()) for t in texts)


def response_from_row(status: Any, body: Any, headers: Any, image_key: Any) -> StoredResponse:
    """A :class:`StoredResponse` from its stored columns, however they arrived: from SQLite
    here, or as the strings and numbers of a Durable Object RPC, where ``""`` stands for no
    image key and ``headers`` is JSON text. One place, so both runtimes read it alike."""
    replay = json.loads(str(headers or "{}"))
    return StoredResponse(
        int(status),
        str(body),
        {str(name): str(value) for name, value in replay.items()},
        str(image_key) if image_key else None,
    )


def headers_text(headers: dict[str, str]) -> str:
    return json.dumps(headers, separators=(",", ":"))


def claim_fields(claim: Claim) -> list[Any]:
    """A claim as RPC-safe fields: ``[state, retry_after, status, body, headers, image_key]``
    (``0, "", "{}", ""`` without a response)."""
    response = claim.response
    if response is None:
        return [claim.state, claim.retry_after, 0, "", "{}", ""]
    return [
        claim.state,
        claim.retry_after,
        response.status,
        response.body,
        headers_text(response.headers),
        response.image_key or "",
    ]


def claim_from_fields(fields: Sequence[Any]) -> Claim:
    """The inverse of :func:`claim_fields`."""
    state, retry_after, status, body, headers, image_key = fields
    name = str(state)
    if name not in CLAIM_STATES:
        raise ValueError(f"not a claim state: {name!r}")
    response = response_from_row(status, body, headers, image_key) if name == DONE else None
    return Claim(name, response, int(retry_after))


class IdempotencyTable:
    """The store's logic over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(self, execute: Exec, *, prune_batch: int = PRUNE_BATCH) -> None:
        self._exec = execute
        self._prune_batch = prune_batch
        for statement in (SCHEMA, USAGE_SCHEMA, *TRIGGERS, *INDEXES):
            self._exec(statement, ())
        if self._exec(LEGACY, ()):
            for statement in MIGRATE:
                self._exec(statement, ())

    def claim(
        self,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        *,
        account: str = "",
        caps: Caps = UNCAPPED,
    ) -> Claim:
        """Start (``"started"``: the caller runs the request and then completes or releases
        the claim), or report why not. ``account``: the API key whose ``caps`` a new row
        counts against (``"full"`` past them)."""
        self._exec(PRUNE, (now, self._prune_batch))
        self._exec(TAKE_OVER, (scope, key, now, RUNNING, now))
        size = claim_size(scope, key, fingerprint, token)
        row = (account, scope, key, fingerprint, token, RUNNING, now, now + RETENTION_SECONDS)
        limits = (account, caps.rows, size, caps.bytes)
        for _ in range(CLAIM_ATTEMPTS):
            if self._exec(CLAIM, (*row, now + caps.lease_seconds, size, *limits)):
                return Claim("started")
            found = self._exec(READ, (scope, key))
            if not found:
                if not self._exec(OVER, (caps.rows, size, caps.bytes, account)):
                    continue  # released in between (a store without transactions)
                if self._exec(PRUNE_ACCOUNT, (account, now, self._prune_batch)):
                    continue  # the account's expired rows made room
                return Claim("full", retry_after=self._until_room(account, now))
            stored, state, _, lease_until, status, body, headers, image_key = found[0]
            if str(stored) != fingerprint:
                return Claim("mismatch")
            if state == DONE:
                return Claim("done", response_from_row(status, body, headers, image_key))
            wait = math.ceil(float(lease_until) - now)
            return Claim("running", retry_after=max(1, min(math.ceil(caps.lease_seconds), wait)))
        return Claim("running", retry_after=1)  # contended beyond reason: let the client retry

    def _until_room(self, account: str, now: float) -> int:
        """Seconds until the account's oldest row expires (at least 1)."""
        oldest = self._exec(OLDEST, (account, now))
        first = oldest[0][0] if oldest else None
        return max(1, math.ceil(float(first) - now)) if first is not None else 1

    def complete(
        self, scope: str, key: str, token: str, response: StoredResponse, now: float
    ) -> bool:
        """Store the answer of the claim ``token`` holds (``False``: the claim was lost,
        taken over or released, or the row expired; nothing is stored). The row keeps the
        expiry its claim set."""
        params = (
            DONE,
            response.status,
            response.body,
            headers_text(response.headers),
            response.image_key,
            ANSWER_RESERVE,
            answer_size(response),
            scope,
            key,
            token,
            RUNNING,
            now,
        )
        return bool(self._exec(COMPLETE, params))

    def release(self, scope: str, key: str, token: str) -> None:
        """Forget the running claim ``token`` holds (a retryable failure: the retry runs
        again); a claim since taken over is left to its new holder."""
        self._exec(RELEASE, (scope, key, token, RUNNING))


class IdempotencyStore(Protocol):
    """The async port the service uses; one implementation per runtime. ``account`` (the
    API key's id) picks the Durable Object on Workers and is what ``caps`` bound; rows are
    keyed by ``(scope, key)``."""

    async def claim(
        self,
        account: str,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        caps: Caps,
    ) -> Claim: ...

    async def complete(
        self,
        account: str,
        scope: str,
        key: str,
        token: str,
        response: StoredResponse,
        now: float,
    ) -> bool: ...

    async def release(self, account: str, scope: str, key: str, token: str) -> None: ...
