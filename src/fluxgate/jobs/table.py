"""Asynchronous generations: job state, leases, and the queue port.

A job is a generation request accepted now and run by a queue consumer later. Its state
must be read back consistently (a client polls it; a second delivery of the same message
must see that the job is already done), so it lives in a transactional store: one Durable
Object per job on Workers, SQLite locally; never KV, whose reads may be a minute stale.

Delivery is at least once (Queues may redeliver); completion is at most once. A consumer
*claims* a job with a lease token before running it, and only the holder of the current
lease can complete it: a duplicate delivery finds the job running (and backs off) or done
(and drops the message). The transitions are single SQL statements, the same on both
runtimes. Pydantic-free: the Durable Object imports it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

QUEUED, RUNNING, SUCCEEDED, FAILED = "queued", "running", "succeeded", "failed"
LEASE_SECONDS = 300

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id TEXT PRIMARY KEY, owner TEXT NOT NULL, status TEXT NOT NULL,"
    " request TEXT NOT NULL, result TEXT, error TEXT, webhook_url TEXT, webhook TEXT,"
    " attempts INTEGER NOT NULL DEFAULT 0, lease TEXT, lease_until REAL,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL)"
)
_COLUMNS = (
    "id, owner, status, request, result, error, webhook_url, webhook, attempts, created, updated"
)

Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


@dataclass(frozen=True)
class Job:
    id: str
    owner: str  # the principal's scope id: key, or key/subject
    status: str
    request: dict[str, Any]  # what the consumer needs to run it (no secrets)
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    webhook_url: str | None
    webhook: dict[str, Any] | None  # delivery state: attempts, last status, delivered
    attempts: int
    created: int
    updated: int

    @classmethod
    def new(
        cls,
        job_id: str,
        *,
        owner: str,
        request: dict[str, Any],
        webhook_url: str | None,
        now: int,
        result: dict[str, Any] | None = None,
    ) -> Job:
        """A job as submitted: queued, or already succeeded with ``result`` (a cache hit)."""
        status = QUEUED if result is None else SUCCEEDED
        return cls(
            id=job_id,
            owner=owner,
            status=status,
            request=request,
            result=result,
            error=None,
            webhook_url=webhook_url,
            webhook=None,
            attempts=0,
            created=now,
            updated=now,
        )

    @property
    def done(self) -> bool:
        return self.status in (SUCCEEDED, FAILED)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "status": self.status,
            "request": self.request,
            "result": self.result,
            "error": self.error,
            "webhook_url": self.webhook_url,
            "webhook": self.webhook,
            "attempts": self.attempts,
            "created": self.created,
            "updated": self.updated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        return cls(**data)


def _job(row: Sequence[Any]) -> Job:
    (
        job_id,
        owner,
        status,
        request,
        result,
        error,
        webhook_url,
        webhook,
        attempts,
        created,
        updated,
    ) = row
    return Job(
        job_id,
        owner,
        status,
        json.loads(request),
        json.loads(result) if result else None,
        json.loads(error) if error else None,
        webhook_url,
        json.loads(webhook) if webhook else None,
        int(attempts),
        int(created),
        int(updated),
    )


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a job: run it (with ``lease``), wait, or drop the message."""

    outcome: str  # "run" | "busy" | "done" | "missing"
    job: Job | None = None
    lease: str | None = None
    retry_in: int = 0


class JobTable:
    """The job state machine over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(self, execute: Exec) -> None:
        self._exec = execute
        self._exec(SCHEMA, ())

    def create(self, job: Job) -> None:
        self._exec(
            f"INSERT INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job.id,
                job.owner,
                job.status,
                json.dumps(job.request),
                json.dumps(job.result) if job.result is not None else None,
                json.dumps(job.error) if job.error is not None else None,
                job.webhook_url,
                json.dumps(job.webhook) if job.webhook is not None else None,
                job.attempts,
                job.created,
                job.updated,
            ),
        )

    def get(self, job_id: str) -> Job | None:
        rows = self._exec(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        return _job(rows[0]) if rows else None

    def claim(self, job_id: str, now: float, lease_seconds: int = LEASE_SECONDS) -> Claim:
        lease = secrets.token_hex(8)
        rows = self._exec(
            "UPDATE jobs SET status = ?, lease = ?, lease_until = ?, attempts = attempts + 1,"
            " updated = ? WHERE id = ? AND (status = ? OR (status = ? AND lease_until <= ?))"
            f" RETURNING {_COLUMNS}",
            (RUNNING, lease, now + lease_seconds, int(now), job_id, QUEUED, RUNNING, now),
        )
        if rows:
            return Claim("run", _job(rows[0]), lease)
        job = self.get(job_id)
        if job is None:
            return Claim("missing")
        if job.done:
            return Claim("done", job)
        until = self._exec("SELECT lease_until FROM jobs WHERE id = ?", (job_id,))[0][0] or now
        return Claim("busy", job, retry_in=max(1, int(until - now) + 1))

    def _finish(
        self, job_id: str, lease: str, status: str, column: str, value: dict[str, Any], now: float
    ) -> Job | None:
        rows = self._exec(
            f"UPDATE jobs SET status = ?, {column} = ?, lease = NULL, lease_until = NULL,"
            " updated = ? WHERE id = ? AND status = ? AND lease = ?"
            f" RETURNING {_COLUMNS}",
            (status, json.dumps(value), int(now), job_id, RUNNING, lease),
        )
        return _job(rows[0]) if rows else None

    def succeed(self, job_id: str, lease: str, result: dict[str, Any], now: float) -> Job | None:
        """Complete the job; ``None`` if this lease no longer holds it (someone else did)."""
        return self._finish(job_id, lease, SUCCEEDED, "result", result, now)

    def fail(self, job_id: str, lease: str, error: dict[str, Any], now: float) -> Job | None:
        return self._finish(job_id, lease, FAILED, "error", error, now)

    def release(self, job_id: str, lease: str, now: float) -> bool:
        """Give a claimed job back to the queue (a retryable failure); ``False`` when this
        lease no longer holds it."""
        rows = self._exec(
            "UPDATE jobs SET status = ?, lease = NULL, lease_until = NULL, updated = ?"
            " WHERE id = ? AND status = ? AND lease = ? RETURNING id",
            (QUEUED, int(now), job_id, RUNNING, lease),
        )
        return bool(rows)

    def record_webhook(self, job_id: str, state: dict[str, Any], now: float) -> None:
        self._exec(
            "UPDATE jobs SET webhook = ?, updated = ? WHERE id = ?",
            (json.dumps(state), int(now), job_id),
        )


@dataclass(frozen=True)
class Disposition:
    """What the queue should do with a message: acknowledge it, or deliver it again later."""

    retry_in: int | None = None

    @property
    def ack(self) -> bool:
        return self.retry_in is None


ACK = Disposition()


def backoff(base: float, attempt: int, cap: float = 3600) -> int:
    """Exponential: base, 4·base, 16·base… (whole seconds, as Queues counts them)."""
    return max(0, int(min(cap, base * 4 ** max(0, attempt - 1))))


class JobStore(Protocol):
    """The async port over :class:`JobTable` (a Durable Object per job, or SQLite)."""

    async def create(self, job: Job) -> None: ...

    async def get(self, job_id: str) -> Job | None: ...

    async def claim(self, job_id: str, now: float) -> Claim: ...

    async def succeed(
        self, job_id: str, lease: str, result: dict[str, Any], now: float
    ) -> Job | None: ...

    async def fail(
        self, job_id: str, lease: str, error: dict[str, Any], now: float
    ) -> Job | None: ...

    async def release(self, job_id: str, lease: str, now: float) -> bool: ...

    async def record_webhook(self, job_id: str, state: dict[str, Any], now: float) -> None: ...


class Consumer(Protocol):
    """What a queue's consumer hands each message to (``JobRunner.process``)."""

    async def process(self, message: dict[str, Any], attempts: int = 1) -> Disposition: ...


class JobQueue(Protocol):
    """A message queue with delayed delivery (Cloudflare Queues, or the local one)."""

    async def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None: ...


def new_job_id() -> str:
    return "job_" + secrets.token_hex(12)


def is_job_id(text: str) -> bool:
    """The shape of an id :func:`new_job_id` makes (checked before any store is read)."""
    return (
        text.startswith("job_")
        and len(text) == 28
        and all(c in "0123456789abcdef" for c in text[4:])
    )
