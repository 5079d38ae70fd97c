"""Async jobs on Workers: Queues for delivery, a Durable Object per job for its state.

KV would show a polling client (or a redelivered message) a state up to a minute old; a
Durable Object per job is strongly consistent and runs :class:`~fluxgate.jobs.table.JobTable`'s
single-statement transitions on its own SQLite, so completion stays at-most-once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from js import AbortSignal, fetch
from workers import DurableObject

from ...jobs.table import Claim, Consumer, Job, JobTable
from ...jobs.webhooks import DeliveryError
from ..ffi import js_object, js_text, py_value, sql_executor, unwrap

log = logging.getLogger("fluxgate.edge.jobs")


class JobObject(DurableObject):
    """One job's state (SQLite-backed). RPC arguments and results are JSON text, so nothing
    but strings crosses the RPC boundary."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._table = JobTable(sql_executor(self.ctx.storage))

    async def create(self, job: str) -> None:
        self._table.create(Job.from_dict(json.loads(job)))

    async def get(self, job_id: str) -> str | None:
        job = self._table.get(job_id)
        return None if job is None else json.dumps(job.as_dict())

    async def claim(self, job_id: str, now: float) -> str:
        claim = self._table.claim(job_id, now)
        return json.dumps(
            {
                "outcome": claim.outcome,
                "lease": claim.lease,
                "retry_in": claim.retry_in,
                "job": claim.job.as_dict() if claim.job else None,
            }
        )

    async def finish(
        self, job_id: str, lease: str, outcome: str, value: str, now: float
    ) -> str | None:
        finish = self._table.succeed if outcome == "succeeded" else self._table.fail
        job = finish(job_id, lease, json.loads(value), now)
        return None if job is None else json.dumps(job.as_dict())

    async def release(self, job_id: str, lease: str, now: float) -> bool:
        return self._table.release(job_id, lease, now)

    async def record_webhook(self, job_id: str, state: str, now: float) -> None:
        self._table.record_webhook(job_id, json.loads(state), now)


def _job(raw: Any) -> Job | None:
    text = js_text(raw)
    return None if text in (None, "null") else Job.from_dict(json.loads(text))


class WorkersJobStore:
    """The gateway's :class:`~fluxgate.jobs.table.JobStore`: one ``JobObject`` per job id."""

    def __init__(self, namespace: Any) -> None:
        self._namespace = unwrap(namespace)

    def _stub(self, job_id: str) -> Any:
        return self._namespace.get(self._namespace.idFromName(job_id))

    async def create(self, job: Job) -> None:
        await self._stub(job.id).create(json.dumps(job.as_dict()))

    async def get(self, job_id: str) -> Job | None:
        return _job(await self._stub(job_id).get(job_id))

    async def claim(self, job_id: str, now: float) -> Claim:
        data = json.loads(str(await self._stub(job_id).claim(job_id, now)))
        job = Job.from_dict(data["job"]) if data["job"] else None
        return Claim(data["outcome"], job, data["lease"], int(data["retry_in"]))

    async def succeed(
        self, job_id: str, lease: str, result: dict[str, Any], now: float
    ) -> Job | None:
        return _job(
            await self._stub(job_id).finish(job_id, lease, "succeeded", json.dumps(result), now)
        )

    async def fail(self, job_id: str, lease: str, error: dict[str, Any], now: float) -> Job | None:
        return _job(
            await self._stub(job_id).finish(job_id, lease, "failed", json.dumps(error), now)
        )

    async def release(self, job_id: str, lease: str, now: float) -> bool:
        return bool(await self._stub(job_id).release(job_id, lease, now))

    async def record_webhook(self, job_id: str, state: dict[str, Any], now: float) -> None:
        await self._stub(job_id).record_webhook(job_id, json.dumps(state), now)


class WorkersQueue:
    """The producer side of a Cloudflare Queue (``[[queues.producers]]``)."""

    def __init__(self, binding: Any) -> None:
        self._queue = unwrap(binding)

    async def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        options: dict[str, Any] = {"contentType": "json"}
        if delay_seconds:
            options["delaySeconds"] = int(delay_seconds)
        await self._queue.send(js_object(message), js_object(options))


class FetchPoster:
    """Webhook POSTs with the runtime's own ``fetch``.

    Redirects are not followed (``redirect: "manual"``: a 3xx comes back as the status, and
    the job counts it as a failed delivery), and a receiver that does not answer within
    ``timeout`` seconds is cut off. Workers resolves names itself, so the address cannot be
    checked here: the URL's host is checked at submission and before every attempt, and
    Workers' ``fetch`` does not reach private networks. Failures are reported as
    :class:`~fluxgate.jobs.webhooks.DeliveryError` reasons, never with the runtime's message.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout_ms = int(timeout * 1000)

    async def post(
        self, url: str, body: bytes, headers: Mapping[str, str], *, allow_loopback: bool = False
    ) -> int:
        options = js_object(
            {
                "method": "POST",
                "body": body.decode(),
                "headers": dict(headers),
                "redirect": "manual",
                "signal": AbortSignal.timeout(self._timeout_ms),
            }
        )
        try:
            response = await fetch(url, options)
        except Exception as exc:
            timed_out = "TimeoutError" in f"{type(exc).__name__} {exc}"
            raise DeliveryError("timeout" if timed_out else "connection_failed") from None
        return int(response.status)


async def consume(batch: Any, consumer: Consumer) -> None:
    """The queue handler: each message acked, or retried with the delay ``consumer`` asks
    for."""
    for message in unwrap(batch).messages:
        body = message.body
        payload = py_value(body)
        if isinstance(payload, str):
            payload = json.loads(payload)
        try:
            disposition = await consumer.process(dict(payload), int(message.attempts))
        except Exception:  # one bad message must not fail (and retry) the whole batch
            log.exception("queue message failed; retrying it")
            message.retry(js_object({"delaySeconds": 5}))
            continue
        if disposition.retry_in is None:
            message.ack()
        else:
            message.retry(js_object({"delaySeconds": int(disposition.retry_in)}))
