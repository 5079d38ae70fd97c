"""The local peers of Cloudflare Queues and of the per-job Durable Object.

``SqliteJobStore`` runs :class:`~fluxgate.jobs.table.JobTable` on a SQLite file. ``SqliteQueue``
is a durable queue in the same spirit as Queues: messages survive a restart, delivery is at
least once (a message whose consumer crashed is leased again after a timeout), delays and
retries are per message. ``QueueWorker`` is the embedded consumer the local server runs in
the background. ``HttpxPoster`` sends webhooks, checking the address it connects to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from ..jobs.table import Claim, Job, JobTable
from ..jobs.webhooks import (
    Address,
    DeliveryError,
    InvalidWebhookUrl,
    WebhookTarget,
    address_refusal,
    host_refusal,
    parse_webhook_url,
)
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

    async def release(self, job_id: str, lease: str, now: float) -> bool:
        return self._table.release(job_id, lease, now)

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


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def resolve_host(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives ``host`` (what a connection would use)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class HttpxPoster:
    """Webhook POSTs over httpx, to an address checked when connecting.

    The URL was checked at submission, but a public name can resolve to a private address
    (or change its answer later: DNS rebinding). So the poster resolves the name itself,
    refuses the delivery if any address is not public (loopback when allowed), and connects
    to the address it checked: the URL carries the IP, the ``Host`` header and TLS (SNI and
    certificate check) the name. Redirects are not followed, proxies from the environment
    are not used, and failures are reported as :class:`DeliveryError` reasons only.
    """

    def __init__(self, timeout: float = 10.0, resolve: Resolver = resolve_host) -> None:
        self._timeout = timeout
        self._resolve = resolve

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, allow_loopback: bool = False
    ) -> int:
        try:
            target = parse_webhook_url(url)
        except InvalidWebhookUrl:
            raise DeliveryError("refused_by_policy") from None
        if host_refusal(target, allow_loopback=allow_loopback) is not None:
            raise DeliveryError("refused_by_policy")
        address = await self._address(target, allow_loopback)
        pinned = httpx.URL(target.url).copy_with(host=str(address))
        tls_name = target.scheme == "https" and target.address is None
        async with httpx.AsyncClient(
            timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            try:
                response = await client.post(
                    pinned,
                    content=body,
                    headers={**headers, "host": target.authority},
                    extensions={"sni_hostname": target.host} if tls_name else {},
                )
            except httpx.TimeoutException:
                raise DeliveryError("timeout") from None
            except httpx.HTTPError:
                raise DeliveryError("connection_failed") from None
        return response.status_code

    async def _address(self, target: WebhookTarget, allow_loopback: bool) -> Address:
        if target.address is not None:
            return target.address
        try:
            found = await asyncio.wait_for(self._resolve(target.host, target.port), self._timeout)
        except TimeoutError:
            raise DeliveryError("timeout") from None
        except OSError:
            raise DeliveryError("connection_failed") from None
        try:  # a zone id ("fe80::1%eth0") names an interface; the address is what counts
            addresses = [ipaddress.ip_address(a.partition("%")[0]) for a in found]
        except ValueError:
            raise DeliveryError("refused_by_policy") from None
        if not addresses:
            raise DeliveryError("connection_failed")
        if any(address_refusal(a, allow_loopback=allow_loopback) for a in addresses):
            raise DeliveryError("refused_by_policy")
        return addresses[0]
