"""Submit-then-poll generations and their webhooks, on any runtime's queue.

``submit`` does synchronously everything that can refuse a request (validation, policy,
tier limits, the rate limit, the webhook URL) and answers a cache hit at once; otherwise it
stages the job's reference images (under the job's own keys: jobs never share, nor delete,
each other's inputs), stores the job and enqueues it. ``process`` is the queue consumer: it
claims the job (at most one completion, whatever the redeliveries), runs the same pipeline
as a synchronous request, records the outcome and enqueues the webhook, which is retried
with backoff under one idempotency id.

Money. The job's budget reservation carries the job's id: a re-run (after a crash, or a
lost lease) finds it already made and charges nothing more, so one image is charged once.
The attempt that holds the job's lease settles it: released when the job fails (or when a
clean, retryable failure sends it back to the queue), kept when the job succeeds, whoever
made the image: an attempt whose consumer died mid-call, and was re-run, is charged once.

Retries are decided by error code (:func:`~fluxgate.upstream.is_transient`), never by
status: ``budget_exceeded`` and ``rate_limited`` are 429s that no retry can pass.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from .auth import Principal, _check_usable
from .cache import CacheMode
from .errors import ApiError
from .images import inspect_image
from .jobs import ACK, FAILED, QUEUED, SUCCEEDED, Disposition, Job, JobQueue, JobStore, new_job_id
from .model import ReferenceImage
from .models import Generation, GenerationRequest
from .pipeline import Gateway, GenerationRecord, Outcome
from .storage import read_all
from .upstream import is_transient
from .webhooks import DeliveryError, HttpPoster, check_url, secrets_for_key, signed_headers

log = logging.getLogger("fluxgate.jobs")


def backoff(base: float, attempt: int, cap: float = 3600) -> int:
    """Exponential: base, 4·base, 16·base… (whole seconds, as Queues counts them)."""
    return max(0, int(min(cap, base * 4 ** max(0, attempt - 1))))


def error_dict(error: ApiError) -> dict[str, Any]:
    return {"status": error.status, "code": error.code, "message": error.message}


class Jobs:
    def __init__(
        self,
        gateway: Gateway,
        store: JobStore,
        queue: JobQueue,
        poster: HttpPoster,
        *,
        allow_loopback: bool = False,
        retry_base_seconds: float = 5.0,
        max_attempts: int = 3,
        webhook_max_attempts: int = 6,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self.store = store
        self.queue = queue
        self.poster = poster
        self.allow_loopback = allow_loopback
        self.retry_base = retry_base_seconds
        self.max_attempts = max_attempts
        self.webhook_max_attempts = webhook_max_attempts
        self.clock = clock

    # -- submission ---------------------------------------------------------------------------

    async def submit(
        self,
        request: GenerationRequest,
        references: tuple[ReferenceImage, ...],
        principal: Principal,
        mode: CacheMode,
        webhook_url: str | None,
        base_url: str = "",
    ) -> Job:
        """``base_url``: the request's origin, so that the webhook (sent later, by a consumer
        that has no request) carries absolute URLs like the synchronous answer does."""
        if webhook_url is not None:  # stored (and POSTed to) in its canonical spelling
            webhook_url = check_url(webhook_url, allow_loopback=self.allow_loopback)
        gw = self.gateway
        job_id = new_job_id()
        prepared = await gw.prepare(request, references, principal)  # refuses synchronously
        inputs = [_input_key(job_id, i, ref) for i, ref in enumerate(references)]
        stored = {
            **self._stored_request(request, inputs, principal, mode),
            "base_url": base_url,
        }

        def new_job(status: str, result: dict[str, Any] | None = None) -> Job:
            now = int(self.clock())
            return Job(
                job_id,
                principal.scope_id,
                status,
                stored,
                result,
                None,
                webhook_url,
                None,
                0,
                now,
                now,
            )

        hit = await gw.cached(prepared, principal, False) if mode is CacheMode.NORMAL else None
        if hit is not None:  # a cache hit completes at once
            job = new_job(SUCCEEDED, self._result(hit.record, cached=True))
            await self.store.create(job)
            await self._enqueue_webhook(job)
            return job
        await gw.controls.admit(prepared.policy, principal)  # the submission is what counts
        for key, ref in zip(inputs, references, strict=True):  # the consumer reads them back
            await gw.objects.put(
                key,
                ref.data,
                content_type=ref.info.mime,
                custom_metadata={"job": job_id},
            )
        job = new_job(QUEUED)
        await self.store.create(job)
        await self.queue.send({"type": "job", "job_id": job_id})
        return job

    @staticmethod
    def _stored_request(
        request: GenerationRequest,
        inputs: list[str],
        principal: Principal,
        mode: CacheMode,
    ) -> dict[str, Any]:
        params = request.model_dump(
            mode="json",
            exclude_none=True,
            exclude={*(f"input_image_{i}" for i in range(4)), "run_async", "webhook_url"},
        )
        params.pop("size", None)  # width/height are resolved
        return {
            "params": params,
            "references": inputs,
            "key_id": principal.key.id,
            "subject": principal.subject,
            "scopes": sorted(principal.scopes),
            "mode": mode.value,
        }

    @staticmethod
    def _result(record: GenerationRecord, *, cached: bool) -> dict[str, Any]:
        return {"record": json.loads(record.to_json()), "cached": cached}

    # -- reading --------------------------------------------------------------------------------

    async def get(self, job_id: str, principal: Principal) -> Job:
        job = await self.store.get(job_id) if _valid_job_id(job_id) else None
        if job is None or not (
            job.owner == principal.scope_id
            or (principal.subject is None and job.owner.startswith(principal.key.id + "/"))
        ):
            raise ApiError(404, "not_found", "No such job.")
        return job

    def describe(self, job: Job, base_url: str) -> dict[str, Any]:
        base = (self.gateway.settings.public_base_url or base_url).rstrip("/")
        body: dict[str, Any] = {
            "id": job.id,
            "object": "image.job",
            "status": job.status,
            "created": job.created,
            "updated": job.updated,
            "status_url": f"{base}/v1/jobs/{job.id}",
        }
        if job.result is not None:
            record = GenerationRecord(**job.result["record"])
            generation: Generation = self.gateway.describe(
                record, base_url=base_url, cached=bool(job.result.get("cached"))
            )
            body["result"] = generation.to_json()
        if job.error is not None:
            body["error"] = job.error
        if job.webhook_url is not None:
            body["webhook"] = {"url": job.webhook_url, **(job.webhook or {"state": "pending"})}
        return body

    # -- the consumer ---------------------------------------------------------------------------

    async def process(self, message: dict[str, Any], attempts: int = 1) -> Disposition:
        kind = message.get("type")
        if kind == "job":
            return await self._run_job(str(message.get("job_id", "")))
        if kind == "webhook":
            return await self._deliver(str(message.get("job_id", "")), attempts)
        log.error("dropping a queue message of unknown type %r", kind)
        return ACK

    async def _run_job(self, job_id: str) -> Disposition:
        now = self.clock()
        claim = await self.store.claim(job_id, now)
        if claim.outcome in ("done", "missing"):
            return ACK  # a redelivery of a finished job, or a job that never existed
        if claim.outcome == "busy":
            return Disposition(retry_in=claim.retry_in)  # another consumer holds the lease
        job, lease = claim.job, claim.lease
        assert job is not None and lease is not None
        try:
            outcome = await self._generate(job)
        except ApiError as exc:
            if is_transient(exc) and job.attempts < self.max_attempts:
                if await self.store.release(job_id, lease, self.clock()):
                    await self._release_budget(job)  # a clean failure: the retry reserves
                return Disposition(retry_in=backoff(self.retry_base, job.attempts))
            finished = await self.store.fail(job_id, lease, error_dict(exc), self.clock())
        except Exception as exc:
            log.exception("job %s failed unexpectedly", job_id)
            error = ApiError(500, "internal_error", f"The job failed ({type(exc).__name__}).")
            finished = await self.store.fail(job_id, lease, error_dict(error), self.clock())
        else:
            finished = await self.store.succeed(
                job_id,
                lease,
                self._result(outcome.record, cached=outcome.cache == "HIT"),
                self.clock(),
            )
        if finished is not None:  # this attempt held the lease: it settles the job
            if finished.status == FAILED:
                await self._release_budget(job)
            await self._cleanup_inputs(finished)
            await self._enqueue_webhook(finished)
        return ACK

    async def _release_budget(self, job: Job) -> None:
        """Refund the job's reservation, if an attempt made one. Only the lease holder does
        this: an attempt that lost its lease (it ran past it, its consumer presumed dead)
        must not refund what the attempt that completed the job reserved."""
        await self.gateway.controls.release(job.request["key_id"], job.id)

    async def _generate(self, job: Job) -> Outcome:
        request = job.request
        gw = self.gateway
        record = await gw.keys.get(request["key_id"])
        if record is None:
            raise ApiError(401, "invalid_api_key", "The job's API key no longer exists.")
        _check_usable(record, self.clock())
        principal = Principal(
            record,
            frozenset(request["scopes"]) & frozenset(record.scopes),
            subject=request.get("subject"),
        )
        principal.require("images:generate")
        references = []
        for key in request["references"]:
            body = await gw.objects.get(key)
            if body is None:
                raise ApiError(410, "reference_image_gone", "A reference image was lost.")
            data = await read_all(body)
            references.append(
                ReferenceImage(data, inspect_image(data), hashlib.sha256(data).hexdigest())
            )
        params = GenerationRequest.model_validate(request["params"])
        mode = CacheMode(request["mode"])
        return await gw.generate(
            params, tuple(references), principal, mode, admitted=True, reservation=job.id
        )

    async def _cleanup_inputs(self, job: Job) -> None:
        """Delete the job's staged inputs: its own keys, which no other job reads."""
        for key in job.request.get("references", []):
            try:
                await self.gateway.objects.delete(key)
            except Exception as exc:  # an orphan input costs storage, not correctness
                log.warning("could not delete job input %s: %s", key, type(exc).__name__)

    # -- webhooks -------------------------------------------------------------------------------

    async def _enqueue_webhook(self, job: Job) -> None:
        if job.webhook_url is not None:
            await self.queue.send({"type": "webhook", "job_id": job.id})

    def payload(self, job: Job) -> bytes:
        event = (
            "image.generation.succeeded" if job.status == SUCCEEDED else ("image.generation.failed")
        )
        data = self.describe(job, job.request.get("base_url", ""))
        data.pop("webhook", None)
        return json.dumps(
            {"type": event, "timestamp": job.updated, "data": data}, separators=(",", ":")
        ).encode()

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None]:
        """POST a delivery: ``(status, error)``, the error from a fixed vocabulary
        (``http_<status>``, or a :data:`~fluxgate.webhooks.DELIVERY_ERRORS` reason) and
        never the network's own words, which would tell a caller what answers where."""
        try:  # checked again: the policy may have changed since the job was submitted
            check_url(url, allow_loopback=self.allow_loopback)
        except ApiError:
            return None, "refused_by_policy"
        try:
            status = await self.poster.post(url, body, headers, allow_loopback=self.allow_loopback)
        except DeliveryError as exc:
            return None, exc.reason
        except Exception as exc:
            log.warning("webhook delivery failed: %s", type(exc).__name__)
            return None, "connection_failed"
        return status, None if 200 <= status < 300 else f"http_{status}"

    async def _deliver(self, job_id: str, attempts: int) -> Disposition:
        job = await self.store.get(job_id)
        if job is None or job.webhook_url is None or job.status not in (SUCCEEDED, FAILED):
            return ACK
        if (job.webhook or {}).get("state") == "delivered":
            return ACK  # a duplicate message: the receiver already has it
        key_id = job.request["key_id"]
        record = await self.gateway.keys.get(key_id)  # its secret rotates with the key
        secrets = secrets_for_key(
            self.gateway.signer, key_id, None if record is None else record.rotated_at
        )
        body = self.payload(job)
        message_id = f"{job.id}.{job.status}"
        headers = signed_headers(secrets, message_id, body, now=self.clock())
        status, error = await self._post(job.webhook_url, body, headers)
        now = self.clock()
        state: dict[str, Any] = {
            "attempts": attempts,
            "last_status": status,
            "last_attempt": int(now),
            "id": message_id,
        }
        if error is None:
            await self.store.record_webhook(job.id, {**state, "state": "delivered"}, now)
            return ACK
        if attempts >= self.webhook_max_attempts or error == "refused_by_policy":
            log.warning("webhook for %s abandoned after %d attempts", job.id, attempts)
            await self.store.record_webhook(
                job.id, {**state, "state": "failed", "error": error}, now
            )
            return ACK
        await self.store.record_webhook(job.id, {**state, "state": "retrying", "error": error}, now)
        return Disposition(retry_in=backoff(self.retry_base, attempts))


def _input_key(job_id: str, index: int, ref: ReferenceImage) -> str:
    """Per job, not per content: two jobs with the same image each stage (and delete) their
    own copy, so one job's cleanup can never pull an input from under another."""
    return f"inputs/{job_id}/{index}.{ref.info.extension}"


def _valid_job_id(job_id: str) -> bool:
    return (
        job_id.startswith("job_")
        and len(job_id) == 28
        and all(c in "0123456789abcdef" for c in job_id[4:])
    )


__all__ = ["ACK", "Disposition", "Jobs", "backoff"]
