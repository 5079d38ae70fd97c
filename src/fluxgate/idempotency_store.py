"""Stored answers for ``Idempotency-Key``: a retried POST replays the first answer.

A client that lost a response retries with the same key; it must get the first answer,
not a second (paid) generation. So a key is *claimed* before the work starts, and only one
of any number of concurrent claimers may start it: the claim is one upsert whose ``WHERE``
replaces an existing row only when it is dead (past its retention, or an in-progress claim
whose lease ran out because its request crashed), and ``RETURNING`` tells the claimer
whether it won. The others read the row: the stored answer, "still running", or "this key
was used for another request". The same SQL runs in one Durable Object per API key on
Workers (a single writer) and in a local SQLite file (under ``BEGIN IMMEDIATE``: exact
across processes too).

Only the current holder's token completes or releases a claim, so a request that lost its
lease never overwrites the answer of the request that took over. Rows are remembered for
:data:`RETENTION_SECONDS` from the first request and pruned, a bounded batch at a time, by
later claims (an index on ``expires``). Pydantic-free: the Durable Object imports it.
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

RUNNING, DONE = "running", "done"  # a row's state

ClaimState = Literal["started", "done", "running", "mismatch"]
CLAIM_STATES: tuple[ClaimState, ...] = ("started", "done", "running", "mismatch")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " scope TEXT NOT NULL, idem_key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " token TEXT NOT NULL, state TEXT NOT NULL, created REAL NOT NULL,"
    " expires REAL NOT NULL, lease_until REAL NOT NULL,"
    " status INTEGER, body TEXT, headers TEXT, image_key TEXT,"
    " PRIMARY KEY (scope, idem_key))"
)
INDEXES = ("CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency (expires)",)
# The claim: insert, or take over a dead row (expired, or running past its lease). Nothing
# is returned when a live row stands, so exactly one concurrent claimer sees its token.
CLAIM = (
    "INSERT INTO idempotency"
    " (scope, idem_key, fingerprint, token, state, created, expires, lease_until)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, idem_key) DO UPDATE SET"
    " fingerprint = excluded.fingerprint, token = excluded.token, state = excluded.state,"
    " created = excluded.created, expires = excluded.expires,"
    " lease_until = excluded.lease_until,"
    " status = NULL, body = NULL, headers = NULL, image_key = NULL"
    " WHERE idempotency.expires <= excluded.created"
    " OR (idempotency.state = ? AND idempotency.lease_until <= excluded.created)"
    " RETURNING token"
)
READ = (
    "SELECT fingerprint, state, expires, lease_until, status, body, headers, image_key"
    " FROM idempotency WHERE scope = ? AND idem_key = ?"
)
COMPLETE = (
    "UPDATE idempotency SET state = ?, status = ?, body = ?, headers = ?, image_key = ?"
    " WHERE scope = ? AND idem_key = ? AND token = ? AND state = ? AND expires > ?"
    " RETURNING token"
)
RELEASE = "DELETE FROM idempotency WHERE scope = ? AND idem_key = ? AND token = ? AND state = ?"
PRUNE = (
    "DELETE FROM idempotency WHERE rowid IN"
    " (SELECT rowid FROM idempotency WHERE expires <= ? ORDER BY expires LIMIT ?)"
)
CLAIM_ATTEMPTS = 3  # a row deleted between the upsert and the read: claim again

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
    retry_after: int = 0  # "running": seconds until the running claim's lease ends (>= 1)


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
        self._exec(SCHEMA, ())
        for index in INDEXES:
            self._exec(index, ())

    def claim(self, scope: str, key: str, fingerprint: str, token: str, now: float) -> Claim:
        """Start (``"started"``: the caller runs the request and then completes or releases
        the claim), or report why not."""
        self._exec(PRUNE, (now, self._prune_batch))
        row = (scope, key, fingerprint, token, RUNNING, now, now + RETENTION_SECONDS)
        for _ in range(CLAIM_ATTEMPTS):
            if self._exec(CLAIM, (*row, now + LEASE_SECONDS, RUNNING)):
                return Claim("started")
            found = self._exec(READ, (scope, key))
            if not found:  # released or pruned in between (a store without transactions)
                continue
            stored, state, expires, lease_until, status, body, headers, image_key = found[0]
            if float(expires) <= now or (state == RUNNING and float(lease_until) <= now):
                continue  # replaced in between by a claimer with an older clock
            if str(stored) != fingerprint:
                return Claim("mismatch")
            if state == DONE:
                return Claim("done", response_from_row(status, body, headers, image_key))
            wait = math.ceil(float(lease_until) - now)
            return Claim("running", retry_after=min(LEASE_SECONDS, max(1, wait)))
        return Claim("running", retry_after=1)  # contended beyond reason: let the client retry

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
    API key's id) picks the Durable Object on Workers; rows are keyed by ``(scope, key)``."""

    async def claim(
        self, account: str, scope: str, key: str, fingerprint: str, token: str, now: float
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
