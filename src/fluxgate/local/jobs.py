"""The local peers of Cloudflare Queues and of the per-job Durable Object.

``SqliteJobStore`` runs :class:`~fluxgate.jobs.JobTable` on a SQLite file. ``SqliteQueue``
is a durable queue in the same spirit as Queues: messages survive a restart, delivery is at
least once (a message whose consumer crashed is leased again after a timeout), delays and
retries are per message. ``QueueWorker`` is the embedded consumer the local server runs in
the background. ``HttpxPoster`` sends webhooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..jobs import Claim, Job, JobTable
from .sqlite import SqliteFile

log = logging.getLogger("fluxgate.local.jobs")


class SqliteJobStore:
    def __init__(self, path: Path | str) -> None:
        self._db = SqliteFile(path)
        self._table = JobTable(self._db.execute)

    async def create(self, job: Job) -> None:
        self._table.create(job)

    async def get(self, job_id: str) -> Job | None:
        return self._table.get(job_id)

    async def claim(self, job_id: str, now: float) -> Claim:
        return self._table.claim(job_id, now)

    async def succeed(
        self, job_id: str, lease: str, result: dict[str, Any], now: float
    ) -> Job | None:
        return self._table.succeed(job_id, lease, result, now)

    async def fail(self, job_id: str, lease: str, error: dict[str, Any], now: float) -> Job | None:
        return self._table.fail(job_id, lease, error, now)

    async def release(self, job_id: str, lease: str, now: float) -> None:
        self._table.release(job_id, lease, now)

    async def record_webhook(self, job_id: str, state: dict[str, Any], now: float) -> None:
        self._table.record_webhook(job_id, state, now)

    def close(self) -> None:
        self._db.close()


QUEUE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL, available_at REAL NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, leased_until REAL)"
)


class SqliteQueue:
    """Delayed, at-least-once delivery from a SQLite table."""

    MAX_DELAY_SECONDS = 43_200  # Cloudflare Queues' maximum delay

    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._db = SqliteFile(path)
        self._db.execute(QUEUE_SCHEMA, ())
        self._clock = clock
        self.wakeup = asyncio.Event()

    async def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        if not 0 <= delay_seconds <= self.MAX_DELAY_SECONDS:
            raise ValueError(f"delay must be 0-{self.MAX_DELAY_SECONDS} s")
        body = json.dumps(message)
        if len(body.encode()) > 128 * 1024:
            raise ValueError("a queue message is at most 128 KB")
        self._db.execute(
            "INSERT INTO messages (body, available_at) VALUES (?, ?)",
            (body, self._clock() + delay_seconds),
        )
        self.wakeup.set()

    def lease(self, lease_seconds: float = 300) -> tuple[int, dict[str, Any], int] | None:
        now = self._clock()
        rows = self._db.execute(
            "UPDATE messages SET leased_until = ?, attempts = attempts + 1 WHERE id = ("
            " SELECT id FROM messages WHERE available_at <= ?"
            " AND (leased_until IS NULL OR leased_until <= ?) ORDER BY available_at LIMIT 1)"
            " RETURNING id, body, attempts",
            (now + lease_seconds, now, now),
        )
        if not rows:
            return None
        message_id, body, attempts = rows[0]
        return int(message_id), json.loads(body), int(attempts)

    def ack(self, message_id: int) -> None:
        self._db.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def retry(self, message_id: int, delay_seconds: float) -> None:
        self._db.execute(
            "UPDATE messages SET available_at = ?, leased_until = NULL WHERE id = ?",
            (self._clock() + delay_seconds, message_id),
        )

    def pending(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM messages", ())[0][0])

    def close(self) -> None:
        self._db.close()


Handler = Callable[[dict[str, Any], int], Awaitable[Any]]


class QueueWorker:
    """The embedded consumer: leases messages and hands them to ``handler``.

    ``handler(message, attempts)`` returns a disposition with ``retry_in`` (``None``: ack).
    An exception is treated as a retry after a second, as Queues retries a failed batch.
    """

    def __init__(
        self,
        queue: SqliteQueue,
        handler: Handler,
        *,
        concurrency: int = 2,
        poll_seconds: float = 0.25,
    ) -> None:
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    async def _loop(self) -> None:
        while not self._stopping:
            leased = await asyncio.to_thread(self.queue.lease)
            if leased is None:
                self.queue.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.queue.wakeup.wait(), self.poll_seconds)
                continue
            message_id, body, attempts = leased
            try:
                disposition = await self.handler(body, attempts)
                retry_in = disposition.retry_in
            except Exception:
                log.exception("queue message %s failed; retrying", message_id)
                retry_in = 1
            if retry_in is None:
                self.queue.ack(message_id)
            else:
                self.queue.retry(message_id, retry_in)

    def start(self) -> None:
        self._stopping = False
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.concurrency)]

    async def stop(self) -> None:
        self._stopping = True
        self.queue.wakeup.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []


class HttpxPoster:
    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        async with httpx.AsyncClient(timeout=self._timeout, follow_redirects=False) as client:
            response = await client.post(url, content=body, headers=dict(headers))
            return response.status_code
