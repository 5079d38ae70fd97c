"""The queue consumer: runs async jobs and hands their webhooks to the sender.

``process`` takes one queue message. A job message claims the job (at most one completion,
whatever the redeliveries), runs the same generation as a synchronous request, records the
outcome and enqueues the webhook; a webhook message is one delivery attempt
(:class:`~fluxgate.jobs.webhooks.WebhookSender`).

Money. The job's budget reservation carries the job's id: a re-run (after a crash, or a
lost lease) finds it already made and charges nothing more, so one image is charged once.
The attempt that holds the job's lease settles it: released when the job fails (or when a
clean, retryable failure sends it back to the queue), kept when the job succeeds, whoever
made the image: an attempt whose consumer died mid-call, and was re-run, is charged once.
A job whose image output moderation refused (``output_rejected``) fails, and stays charged:
the model ran.

Retries are decided by error code (:func:`~fluxgate.model.upstream.is_transient`), never by
status: ``budget_exceeded`` and ``rate_limited`` are 429s that no retry can pass.

Listings: the job's catalog row (:mod:`fluxgate.listings.catalog`) follows it, written by the
attempt holding the lease: running when claimed, queued again on a retry, then its final
status. A failed catalog write is logged; the job goes on.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ..access.auth import SCOPE_GENERATE, KeyStore
from ..errors import ApiError
from ..imaging.formats import inspect_image
from ..jobs.table import ACK, FAILED, QUEUED, Disposition, Job, JobStore, backoff
from ..jobs.webhooks import WebhookSender
from ..listings.catalog import CatalogWriter, job_entry
from ..model.params import GenerationParams, ReferenceImage, job_model
from ..model.upstream import is_transient
from ..policy.output_moderation import CHARGED_FAILURES
from ..store.cache_keys import CacheMode
from ..store.ports import ObjectStore, read_all
from .async_jobs import job_result
from .controls import Controls
from .generation import Generator, Outcome

log = logging.getLogger("fluxgate.jobs")


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job is tried (transient failures only), and the backoff base."""

    max_attempts: int = 3
    base_seconds: float = 5.0


def error_dict(error: ApiError) -> dict[str, Any]:
    body = {"status": error.status, "code": error.code, "message": error.message}
    # What output moderation refused the job's image for (as the synchronous 422 says).
    body.update({k: error.extra[k] for k in ("category", "categories") if k in error.extra})
    return body


def charged_failure(error: dict[str, Any] | None) -> bool:
    """A job that failed after its model ran and for what it made (``output_rejected``):
    its reservation is kept, as a synchronous request's charge is."""
    return error is not None and error.get("code") in CHARGED_FAILURES


class JobRunner:
    def __init__(
        self,
        *,
        generator: Generator,
        controls: Controls,
        keys: KeyStore,
        objects: ObjectStore,
        store: JobStore,
        webhooks: WebhookSender,
        retry: RetryPolicy,
        catalog: CatalogWriter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._generator = generator
        self._controls = controls
        self._keys = keys
        self._objects = objects
        self._store = store
        self._webhooks = webhooks
        self._retry = retry
        self._catalog = catalog or CatalogWriter(None)
        self._clock = clock

    async def process(self, message: dict[str, Any], attempts: int = 1) -> Disposition:
        kind = message.get("type")
        if kind == "job":
            return await self._run(str(message.get("job_id", "")))
        if kind == "webhook":
            return await self._webhooks.deliver(str(message.get("job_id", "")), attempts)
        log.error("dropping a queue message of unknown type %r", kind)
        return ACK

    async def _run(self, job_id: str) -> Disposition:
        claim = await self._store.claim(job_id, self._clock())
        if claim.outcome in ("done", "missing"):
            return ACK  # a redelivery of a finished job, or a job that never existed
        if claim.outcome == "busy":
            return Disposition(retry_in=claim.retry_in)  # another consumer holds the lease
        job, lease = claim.job, claim.lease
        assert job is not None and lease is not None
        await self._catalog.put(job_entry(job))  # listings show it running
        try:
            outcome = await self._generate(job)
        except ApiError as exc:
            if is_transient(exc) and job.attempts < self._retry.max_attempts:
                now = self._clock()
                if await self._store.release(job_id, lease, now):
                    await self._release_budget(job)  # a clean failure: the retry reserves
                    await self._catalog.put(
                        job_entry(replace(job, status=QUEUED, updated=int(now)))
                    )
                return Disposition(retry_in=backoff(self._retry.base_seconds, job.attempts))
            finished = await self._store.fail(job_id, lease, error_dict(exc), self._clock())
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job_id)
            error = ApiError(500, "internal_error", f"The job failed ({type(exc).__name__}).")
            finished = await self._store.fail(job_id, lease, error_dict(error), self._clock())
        else:
            result = job_result(outcome.record, cached=outcome.cache == "HIT")
            finished = await self._store.succeed(job_id, lease, result, self._clock())
        if finished is not None:  # this attempt held the lease: it settles the job
            await self._catalog.put(job_entry(finished))
            if finished.status == FAILED and not charged_failure(finished.error):
                await self._release_budget(job)
            await self._cleanup_inputs(finished)
            await self._webhooks.enqueue(finished)
        return ACK

    async def _release_budget(self, job: Job) -> None:
        """Refund the job's reservation, if an attempt made one. Only the lease holder does
        this: an attempt that lost its lease (it ran past it, its consumer presumed dead)
        must not refund what the attempt that completed the job reserved."""
        await self._controls.release(job.request["key_id"], job.id)

    async def _generate(self, job: Job) -> Outcome:
        request = job.request
        principal = await self._keys.principal_for(
            request["key_id"], request["scopes"], request.get("subject")
        )
        principal.require(SCOPE_GENERATE)
        stored = request["params"]
        params = GenerationParams.from_dict(
            stored,
            await self._staged_inputs(request["references"]),
            model=self._generator.served_name(job_model(stored)),
        )
        return await self._generator.generate(
            principal, params, CacheMode(request["mode"]), job=job.id
        )

    async def _staged_inputs(self, keys: list[str]) -> tuple[ReferenceImage, ...]:
        references = []
        for key in keys:
            body = await self._objects.get(key)
            if body is None:
                raise ApiError(410, "reference_image_gone", "A reference image was lost.")
            data = await read_all(body)
            references.append(
                ReferenceImage(data, inspect_image(data), hashlib.sha256(data).hexdigest())
            )
        return tuple(references)

    async def _cleanup_inputs(self, job: Job) -> None:
        """Delete the job's staged inputs: its own keys, which no other job reads."""
        for key in job.request.get("references", []):
            try:
                await self._objects.delete(key)
            except Exception as exc:  # an orphan input costs storage, not correctness
                log.warning("could not delete job input %s: %s", key, type(exc).__name__)
