"""Async generations: submission and reads (the consumer is :mod:`fluxgate.service.job_runner`).

``submit`` does synchronously everything that can refuse a request (validation, policy,
tier limits, the rate limit, the webhook URL) and answers a cache hit at once; otherwise it
stages the job's reference images (under the job's own keys: jobs never share, nor delete,
each other's inputs), stores the job and enqueues it.

The stored request is what the consumer needs to run the job later, without the request:
the resolved parameters (:meth:`GenerationParams.to_dict`), the staged inputs, who asked
(key, end user, scopes), the cache mode, and the origin the job was submitted on, so that
its webhook carries absolute URLs like the synchronous answer does. No secrets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..access.auth import Principal
from ..delivery.variants import Variant
from ..errors import ApiError
from ..jobs.table import Job, JobQueue, JobStore, is_job_id, new_job_id
from ..jobs.webhooks import WebhookSender
from ..listings.catalog import CatalogWriter, job_entry
from ..model.params import GenerationParams, ReferenceImage
from ..store.cache_keys import CacheMode
from ..store.ports import ObjectStore
from ..store.records import GenerationRecord
from .controls import Controls
from .generation import Generator


def job_result(record: GenerationRecord, *, cached: bool) -> dict[str, Any]:
    """A succeeded job's ``result``: the generation's record, and whether it was a hit."""
    return {"record": record.as_dict(), "cached": cached}


def staged_input_key(job_id: str, index: int, ref: ReferenceImage) -> str:
    """Per job, not per content: two jobs with the same image each stage (and delete) their
    own copy, so one job's cleanup can never pull an input from under another."""
    return f"inputs/{job_id}/{index}.{ref.info.extension}"


class Jobs:
    def __init__(
        self,
        *,
        generator: Generator,
        controls: Controls,
        objects: ObjectStore,
        store: JobStore,
        queue: JobQueue,
        webhooks: WebhookSender,
        catalog: CatalogWriter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._generator = generator
        self._controls = controls
        self._objects = objects
        self._store = store
        self._queue = queue
        self._webhooks = webhooks
        self._catalog = catalog or CatalogWriter(None)
        self._clock = clock

    async def submit(
        self,
        principal: Principal,
        params: GenerationParams,
        mode: CacheMode,
        webhook_url: str | None,
        base_url: str = "",
        variants: Sequence[Variant] = (),
    ) -> tuple[Job, Mapping[str, str]]:
        """The job, and the ``RateLimit-*`` headers of its submission (none for a cache
        hit, which is not counted). ``base_url``: the request's origin (see the module
        docstring). ``variants``: kept with the job, so that its result signs their URLs."""
        if webhook_url is not None:  # stored (and POSTed to) in its canonical spelling
            webhook_url = self._webhooks.check(webhook_url)
        job_id = new_job_id()
        admission = await self._generator.admit(principal, params)  # refuses synchronously
        inputs = [staged_input_key(job_id, i, ref) for i, ref in enumerate(params.references)]
        request = {
            "params": params.to_dict(),
            "references": inputs,
            "key_id": principal.key.id,
            "subject": principal.subject,
            "scopes": sorted(principal.scopes),
            "mode": mode.value,
            "base_url": base_url,
        }
        if variants:
            request["variants"] = [v.name for v in variants]
        hit = await self._generator.cached(admission, params) if mode is CacheMode.NORMAL else None
        if hit is not None:  # a cache hit completes at once
            job = self._new(job_id, principal, request, webhook_url, hit.record)
            await self._create(job)
            await self._webhooks.enqueue(job)
            return job, {}
        pace = await self._controls.before_queue(admission)  # the submission is what counts
        for key, ref in zip(inputs, params.references, strict=True):  # the runner reads them
            await self._objects.put(
                key, ref.data, content_type=ref.info.mime, custom_metadata={"job": job_id}
            )
        job = self._new(job_id, principal, request, webhook_url, None)
        await self._create(job)
        await self._queue.send({"type": "job", "job_id": job_id})
        return job, pace

    async def _create(self, job: Job) -> None:
        """Store the job, then list it, before it is queued: the consumer's status updates
        never overtake the listing's first row, and a job that could not be stored is never
        listed. A catalog failure is only logged: the job is accepted all the same."""
        await self._store.create(job)
        await self._catalog.put(job_entry(job))

    def _new(
        self,
        job_id: str,
        principal: Principal,
        request: dict[str, Any],
        webhook_url: str | None,
        hit: GenerationRecord | None,
    ) -> Job:
        return Job.new(
            job_id,
            owner=principal.scope_id,
            request=request,
            webhook_url=webhook_url,
            now=int(self._clock()),
            result=None if hit is None else job_result(hit, cached=True),
        )

    async def get(self, job_id: str, principal: Principal) -> Job:
        """A job the caller may read (:meth:`Principal.owns`); others' are not found."""
        job = await self._store.get(job_id) if is_job_id(job_id) else None
        if job is None or not principal.owns(job.owner):
            raise ApiError(404, "not_found", "No such job.")
        return job
