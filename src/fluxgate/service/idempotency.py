"""``Idempotency-Key``: a retried POST gets the first answer, never a second generation.

The semantics are Stripe's and the IETF draft's (draft-ietf-httpapi-idempotency-key-header):

- A key is scoped to its caller: the API key, or the API key and end user (a client
  token's subject, or ``user``). Two callers may use the same key for different requests.
- The same key with the same request (:func:`fingerprint`: a hash of every parameter, the
  reference images' digests, the model and the answer asked for) within
  :data:`~fluxgate.store.answers.RETENTION_SECONDS` of the first replays its answer:
  same status and body, ``Idempotent-Replayed: true``, no model call, no charge, no job.
- The same key with another request: ``422 idempotency_key_reused``.
- A request arriving while the first is still running *waits* for it (polling the store,
  up to :data:`WAIT_SECONDS`), then replays its answer; only a first request still running
  after that gets ``409 idempotency_key_in_progress`` with ``Retry-After``. Waiting is what
  a retrying mobile client wants: its retry returns the answer instead of an error to
  retry again.
- What is stored: a success, and a refusal of the request itself (a 4xx: the same request
  would be refused again). Not stored, so that a retry runs: a 5xx (an upstream or storage
  failure), ``429`` (a rate limit or a spent budget: the caller is told to come back) and
  ``409``. A request that fails so releases its claim.
- Bounded: a key stores a row for a day, so each API key holds at most
  ``IDEMPOTENCY_MAX_KEYS`` rows and ``IDEMPOTENCY_MAX_BYTES`` bytes (:class:`Caps`, checked
  in the claim itself); past them a new key is ``429 idempotency_keys_exhausted`` with
  ``Retry-After`` until the oldest row expires. Replays and retries of a stored key still
  work. And every stored answer has been counted against the caller's rate limit (the
  route counts one that was not: a cache hit, a refusal), so a client cannot store rows
  faster than it may generate.

The claim is taken in a store that is exact under concurrency (one SQLite Durable Object
per API key on Workers, SQLite locally): of twenty concurrent identical requests one runs,
nineteen wait and replay. Pydantic-free.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..access.auth import Principal
from ..errors import ApiError
from ..model.params import GenerationParams
from ..store.answers import UNCAPPED, Caps, Claim, IdempotencyStore, StoredResponse

log = logging.getLogger("fluxgate.idempotency")

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
WAIT_SECONDS = 30.0  # how long a duplicate waits for the first request to finish
IN_PROGRESS_RETRY_AFTER = 5
_FIRST_POLL, _MAX_POLL = 0.05, 0.5
# Retryable answers: not stored, so the retry runs again.
_NOT_STORED = {408, 409, 425, 429}


def fingerprint(route: str, params: GenerationParams, answer: dict[str, Any]) -> str:
    """The canonical hash of a request: its route, its parameters as resolved (the model by
    its Workers AI id, the reference images by digest) and what it asks of the answer
    (``response_format``, ``async``, ``webhook_url``, the cache mode...)."""
    canonical = json.dumps(
        {
            "route": route,
            "model": params.spec.id,
            "prompt": params.prompt,
            **params.drawing(),
            "answer": answer,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def checked_key(value: str) -> str:
    """The header's value, or ``400 invalid_idempotency_key``: 1-255 printable ASCII
    characters (a UUID is the usual choice)."""
    if not value or len(value) > MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters (a UUID, say).",
            param=HEADER,
        )
    return value


def stored(status: int) -> bool:
    """Whether an answer with ``status`` is kept for replay (see the module docstring)."""
    return status < 500 and status not in _NOT_STORED


@dataclass(frozen=True)
class Attempt:
    """A claimed key: this request runs, and completes or releases the claim."""

    principal: Principal
    key: str
    token: str

    @property
    def account(self) -> str:
        return self.principal.key.id

    @property
    def scope(self) -> str:
        return self.principal.scope_id


def keys_exhausted(retry_after: int) -> ApiError:
    """``429 idempotency_keys_exhausted``: the API key holds as many idempotency keys (or
    bytes of answers) as it may; a new one can be stored once the oldest expires."""
    wait = max(1, retry_after)
    return ApiError(
        429,
        "idempotency_keys_exhausted",
        f"This API key holds as many {HEADER}s as it may for 24 hours; a new one can be "
        f"stored in {wait} s (retries of stored keys still replay).",
        param=HEADER,
        headers={"Retry-After": str(wait)},
    )


class Unavailable:
    """The store of a deployment without one (a Worker without the ``IDEMPOTENCY``
    binding): the header is refused, never silently ignored, since a client relying on it
    would be charged twice without knowing."""

    async def claim(
        self,
        account: str,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        caps: Caps,
    ) -> Claim:
        raise ApiError(
            501,
            "idempotency_unavailable",
            f"{HEADER} is not available on this deployment (no IDEMPOTENCY binding).",
            param=HEADER,
        )

    async def complete(
        self,
        account: str,
        scope: str,
        key: str,
        token: str,
        response: StoredResponse,
        now: float,
    ) -> bool:
        return False

    async def release(self, account: str, scope: str, key: str, token: str) -> None:
        return None


class Idempotency:
    """Claims keys, waits for running duplicates, stores and returns answers."""

    def __init__(
        self,
        store: IdempotencyStore | None,
        *,
        clock: Callable[[], float] = time.time,
        wait_seconds: float = WAIT_SECONDS,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        caps: Caps = UNCAPPED,
    ) -> None:
        self._store: IdempotencyStore = store or Unavailable()
        self._caps = caps
        self._clock = clock
        self._wait = wait_seconds
        self._sleep = sleep

    async def begin(
        self, principal: Principal, key: str, request_hash: str
    ) -> Attempt | StoredResponse:
        """Claim ``key`` for this request (an :class:`Attempt`), or return the answer to
        replay. Raises 422 (another request's key), 409 (still running after the wait),
        429 (the API key's caps are reached), 501 (no store) or 503 (the store failed: the
        request is not run unprotected)."""
        attempt = Attempt(principal, key, secrets.token_hex(16))
        deadline = time.monotonic() + self._wait
        pause = _FIRST_POLL
        while True:
            claim = await self._claim(attempt, request_hash)
            if claim.state == "started":
                return attempt
            if claim.state == "mismatch":
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    f"This {HEADER} was used for a different request in the last 24 hours; "
                    "use a new key for a new request.",
                    param=HEADER,
                )
            if claim.state == "done" and claim.response is not None:
                return claim.response
            if claim.state == "full":
                raise keys_exhausted(claim.retry_after)
            if time.monotonic() + pause > deadline:
                retry = min(max(claim.retry_after, 1), IN_PROGRESS_RETRY_AFTER)
                raise ApiError(
                    409,
                    "idempotency_key_in_progress",
                    f"A request with this {HEADER} is still running; retry to get its answer.",
                    param=HEADER,
                    headers={"Retry-After": str(retry)},
                )
            await self._sleep(pause)
            pause = min(pause * 1.5, _MAX_POLL)

    async def _claim(self, attempt: Attempt, request_hash: str) -> Claim:
        try:
            return await self._store.claim(
                attempt.account,
                attempt.scope,
                attempt.key,
                request_hash,
                attempt.token,
                self._clock(),
                self._caps,
            )
        except ApiError:
            raise
        except Exception as exc:
            log.error("idempotency store unavailable: %s", type(exc).__name__)
            raise ApiError(
                503,
                "idempotency_unavailable",
                f"{HEADER} cannot be checked right now; retry with the same key.",
                param=HEADER,
                headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER)},
            ) from exc

    async def finish(self, attempt: Attempt, response: StoredResponse) -> None:
        """Keep the answer for replay when its status is one that is kept; otherwise (a
        retryable failure) release the key, so that a retry runs."""
        if not stored(response.status):
            await self.release(attempt)
            return
        await self._quietly(
            self._store.complete(
                attempt.account, attempt.scope, attempt.key, attempt.token, response, self._clock()
            )
        )

    async def release(self, attempt: Attempt) -> None:
        """The request failed without an answer worth keeping: free the key."""
        await self._quietly(
            self._store.release(attempt.account, attempt.scope, attempt.key, attempt.token)
        )

    @staticmethod
    async def _quietly(call: Awaitable[Any]) -> None:
        """A failure to record is not the request's: the client already has its answer
        (a retry waits out the claim's lease, then runs again)."""
        try:
            await call
        except Exception as exc:
            log.error("could not record an idempotent answer: %s", type(exc).__name__)
