"""The generation logic: controls, cache, model, storage, index, in that order.

:meth:`Generator.generate` is the whole path of one request, entered once from the API (or
the job runner) and going only down: :class:`~fluxgate.controls.Controls` stages, the KV
cache, the coalescer, the model, the object store, KV again. The miss path is a sequence of
named steps: clear the call (:meth:`~fluxgate.controls.Controls.before_model`), call the
model, store the image, index the record.

Failure order is the point of this module. An image is written to the object store before
anything in KV can point at it; a failed object write fails the request and writes no cache
entry; a failed KV write (record or cache) or catalog write (listings) is logged and the
image is still returned, because the client has paid for it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from .auth import Principal
from .cache import CacheMode, cache_key
from .catalog import CatalogWriter, image_entry
from .coalesce import Coalescer, NotShared
from .controls import Admission, Charge, Controls
from .errors import not_found, storage_unavailable
from .image_bytes import ImageBytes
from .image_model import GeneratedImage, ImageModel, ModelInput
from .models import ModelSpec
from .params import GenerationParams
from .records import GenerationRecord, is_generation_id, new_generation_id
from .storage import KVStore, ObjectStore
from .upstream import UpstreamError, error_from_upstream, is_work_failure
from .usage_events import UsageEvents, UsageRecorder

log = logging.getLogger("fluxgate.generation")

# KV's edge cache for hot keys (cache entries, key records): KV's minimum cacheTtl is 30 s.
HOT_KEY_CACHE_TTL = 60


@dataclass
class Outcome:
    record: GenerationRecord
    cache: str  # HIT | MISS | BYPASS
    image: ImageBytes | None = None  # for b64_json answers only
    model_ms: float | None = None  # time spent in the model call, for Server-Timing
    pace: Mapping[str, str] = field(default_factory=dict)  # RateLimit-* of a model call


@dataclass(frozen=True)
class CachePolicy:
    """How generations are cached: per key (``key``) or shared (``global``), for how long."""

    scope: str = "key"
    ttl_seconds: int | None = None


class Generator:
    """Serves a generation: from the cache, from a concurrent identical request, or from
    the model."""

    def __init__(
        self,
        *,
        kv: KVStore,
        objects: ObjectStore,
        model: ImageModel,
        controls: Controls,
        coalescer: Coalescer,
        cache: CachePolicy,
        catalog: CatalogWriter | None = None,
        events: UsageEvents | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._kv = kv
        self._usage = UsageRecorder(events, clock)  # one event per generation served
        self._catalog = catalog or CatalogWriter(None)
        self._objects = objects
        self._model = model
        self._controls = controls
        self._coalescer = coalescer
        self._cache = cache
        self._clock = clock

    def served_name(self, spec: ModelSpec) -> str:
        """What records and responses name when ``spec`` runs here (a placeholder's name
        for the offline double)."""
        return self._model.served_name(spec)

    # -- the path of a request ------------------------------------------------------------

    async def admit(self, principal: Principal, params: GenerationParams) -> Admission:
        """Everything decided before the cache is read (refuses synchronously)."""
        return await self._controls.before_cache(principal, params)

    async def generate(
        self,
        principal: Principal,
        params: GenerationParams,
        mode: CacheMode,
        *,
        want_bytes: bool = False,
        job: str | None = None,
    ) -> Outcome:
        """``want_bytes``: the answer carries the image (``b64_json``). ``job``: the id of
        the async job this runs (see :meth:`Controls.before_model`); its budget is settled
        by the job when it ends, not refunded here."""
        admission = await self.admit(principal, params)
        return await self.serve(admission, params, mode, want_bytes=want_bytes, job=job)

    async def serve(
        self,
        admission: Admission,
        params: GenerationParams,
        mode: CacheMode,
        *,
        want_bytes: bool = False,
        job: str | None = None,
    ) -> Outcome:
        """:meth:`generate` for a request already admitted (:meth:`admit`); the usage
        event of what it served is recorded (never failing it)."""
        started = time.perf_counter()
        outcome = await self._serve(admission, params, mode, want_bytes, job)
        queued = job is not None
        await self._usage.served(
            admission.principal, outcome.record, outcome.cache, queued=queued, started=started
        )
        return outcome

    async def _serve(
        self,
        admission: Admission,
        params: GenerationParams,
        mode: CacheMode,
        want_bytes: bool,
        job: str | None,
    ) -> Outcome:
        principal = admission.principal
        key = self._cache_key(admission, params)
        if mode is not CacheMode.NORMAL:
            return await self._miss(admission, params, key, mode, job)
        hit = await self._lookup(key, principal, want_bytes)
        if hit is None:
            hit = await self._coalesced(admission, params, key, want_bytes, job)
            if hit.cache != "HIT":
                return hit  # this request led: its own miss
        await self._controls.on_hit(admission, hit.record.moderated)
        return hit

    async def cached(self, admission: Admission, params: GenerationParams) -> Outcome | None:
        """The cached generation for an admitted request, if any (an async submission's
        hit completes at once)."""
        started = time.perf_counter()
        hit = await self._lookup(self._cache_key(admission, params), admission.principal, False)
        if hit is not None:
            await self._controls.on_hit(admission, hit.record.moderated)
            await self._usage.served(
                admission.principal, hit.record, hit.cache, queued=True, started=started
            )
        return hit

    def _cache_key(self, admission: Admission, params: GenerationParams) -> str:
        scope = admission.principal.scope_id if self._cache.scope == "key" else "*"
        return cache_key(params, admission.prompt, scope)

    async def _coalesced(
        self,
        admission: Admission,
        params: GenerationParams,
        key: str,
        want_bytes: bool,
        job: str | None,
    ) -> Outcome:
        """Concurrent identical requests share one model call; the others are served like
        cache hits from the leader's result."""

        async def lead() -> Outcome:
            # Waiters share the model's and the store's outcome, never the leader's own
            # refusal (its rate limit, budget or moderation): they run for themselves.
            try:
                return await self._miss(admission, params, key, CacheMode.NORMAL, job)
            except Exception as exc:
                if is_work_failure(exc):
                    raise
                raise NotShared(exc) from exc

        outcome, leader = await self._coalescer.run(key, lead)
        if leader:
            return outcome
        hit = await self._as_hit(outcome, admission.principal, want_bytes)
        if hit is None:  # the shared image vanished in between: generate for ourselves
            return await self._miss(admission, params, key, CacheMode.NORMAL, job)
        return hit

    # -- the miss path, step by step ------------------------------------------------------

    async def _miss(
        self,
        admission: Admission,
        params: GenerationParams,
        key: str,
        mode: CacheMode,
        job: str | None,
    ) -> Outcome:
        charge = await self._controls.before_model(admission, params.cost(), job=job)
        seed = params.seed if params.seed is not None else secrets.randbelow(2**32)
        created = int(self._clock())
        image = await self._call_model(
            ModelInput.for_params(params, admission.prompt, seed), charge
        )
        # Output moderation: before anything keeps or returns the image (issue 16, part 3).
        await self._inspect(admission, image, charge)
        # AI disclosure: the bytes stored, hashed and returned are the marked ones (part 2).
        image, digest = await self._disclose(image, params.spec, created, charge)
        record = self._new_record(admission, params, key, seed, image, charge, digest)
        await self._store(record, image, charge)
        await self._index(record, key, mode)
        status = "MISS" if mode is CacheMode.NORMAL else "BYPASS"
        return Outcome(record, status, image.data, model_ms=image.upstream_ms, pace=charge.pace)

    async def _call_model(self, model_input: ModelInput, charge: Charge) -> GeneratedImage:
        """The model call; the charge is refunded if it fails."""
        try:
            return await self._model.generate(model_input)
        except UpstreamError as exc:
            await self._controls.refund(charge)
            raise error_from_upstream(exc) from exc
        except BaseException:
            await self._controls.refund(charge)
            raise

    async def _inspect(self, admission: Admission, image: GeneratedImage, charge: Charge) -> None:
        """Output moderation of the generated image (TODO issue 16: being written)."""

    async def _disclose(
        self, image: GeneratedImage, spec: ModelSpec, created: int, charge: Charge
    ) -> tuple[GeneratedImage, str]:
        """The image as stored, and its SHA-256 (TODO issue 16: marking being written)."""
        try:
            return image, await image.data.sha256()
        except BaseException:
            await self._controls.refund(charge)
            raise

    def _new_record(
        self,
        admission: Admission,
        params: GenerationParams,
        key: str,
        seed: int,
        image: GeneratedImage,
        charge: Charge,
        digest: str,
    ) -> GenerationRecord:
        return GenerationRecord.new(
            params,
            owner=admission.principal.scope_id,
            created=int(self._clock()),
            prompt=admission.prompt,
            seed=seed,
            object_key=f"images/{digest}.{image.info.extension}",
            content_type=image.info.mime,
            size=image.data.size,
            sha256=digest,
            policy_version=admission.policy.document.version,
            moderated=charge.moderated,
            cache_key=key.removeprefix("cache:"),
        )

    async def _store(self, record: GenerationRecord, image: GeneratedImage, charge: Charge) -> None:
        """The image, before anything can point at it; a failure refunds the charge (the
        client gets no image, so it is not billed)."""
        try:
            await self._objects.put(
                record.object_key,
                image.data,
                content_type=record.content_type,
                custom_metadata={
                    "seed": str(record.seed),
                    "size": f"{record.width}x{record.height}",
                    "params": record.cache_key,
                    "owner": charge.account,
                    "generation": record.id,
                },
            )
        except Exception as exc:
            log.error("object write failed for %s: %s", record.id, type(exc).__name__)
            await self._controls.refund(charge)
            raise storage_unavailable("the image could not be stored") from exc

    async def _index(self, record: GenerationRecord, key: str, mode: CacheMode) -> None:
        """The record by id, the cache entry and the key's catalog (listings): independent
        writes, made concurrently; none of them fails the request."""
        value = record.to_json()
        writes = [
            self._put_quietly(f"gen:{record.id}", value, None),
            self._catalog.put(image_entry(record)),
        ]
        if mode is not CacheMode.NO_STORE:
            writes.append(self._put_quietly(key, value, self._cache.ttl_seconds))
        await asyncio.gather(*writes)

    async def _put_quietly(self, key: str, value: str, ttl: int | None) -> None:
        try:
            await self._kv.put(key, value, ttl=ttl)
        except Exception as exc:
            log.error(
                "KV write of %s failed (%s); the image is still returned",
                key.split(":")[0],
                type(exc).__name__,
            )

    # -- hits -----------------------------------------------------------------------------

    async def _lookup(self, key: str, principal: Principal, want_bytes: bool) -> Outcome | None:
        try:
            raw = await self._kv.get(key, cache_ttl=HOT_KEY_CACHE_TTL)
            record = None if raw is None else GenerationRecord.from_json(raw)
        except Exception as exc:  # a KV outage or a damaged entry degrades to a miss
            log.warning("cache read failed: %s", type(exc).__name__)
            return None
        if record is None:
            return None
        return await self._as_hit(Outcome(record, "HIT"), principal, want_bytes)

    async def _as_hit(
        self, found: Outcome, principal: Principal, want_bytes: bool
    ) -> Outcome | None:
        """Serve an existing generation to ``principal``: free, and owned by the caller.

        The hit path touches no image bytes: the URL is signed from the record alone (a
        vanished object is found, and its entry dropped, by the file route). Only
        ``b64_json`` reads the object, since the bytes are the answer.
        """
        record, data = found.record, found.image
        if want_bytes and data is None:
            try:
                data = await self._objects.read_image(record.object_key)
            except Exception as exc:
                log.warning("object read failed on a cache hit: %s", type(exc).__name__)
                return None
            if data is None:
                log.info("stale cache entry %s: object gone; regenerating", record.cache_key[:16])
                return None
        if record.owner != principal.scope_id:  # global cache: the caller gets its own record
            record = replace(
                record,
                id=new_generation_id(),
                owner=principal.scope_id,
                charged=False,
                created=int(self._clock()),
            )
            await asyncio.gather(
                self._put_quietly(f"gen:{record.id}", record.to_json(), None),
                self._catalog.put(image_entry(record)),
            )
        elif found.cache != "HIT":  # a coalesced follower of our own key: not charged again
            record = replace(record, charged=False)
        return Outcome(record, "HIT", data if want_bytes else None)

    # -- reads ----------------------------------------------------------------------------

    async def record(self, generation_id: str, principal: Principal) -> GenerationRecord:
        """A generation the caller may read (:meth:`Principal.owns`); someone else's is
        indistinguishable from none."""
        if not is_generation_id(generation_id):
            raise not_found("image")
        raw = await self._kv.get(f"gen:{generation_id}")
        if raw is None:
            raise not_found("image")
        record = GenerationRecord.from_json(raw)
        if not principal.owns(record.owner):
            raise not_found("image")
        return record

    async def forget(self, cache_entry: str) -> None:
        """Drop a cache entry whose image is gone, so that the next identical request
        regenerates instead of handing out a dead link."""
        try:
            await self._kv.delete(cache_entry)
        except Exception as exc:
            log.warning("could not drop stale cache entry: %s", type(exc).__name__)
