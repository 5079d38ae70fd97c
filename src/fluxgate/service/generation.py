"""The generation logic: controls, cache, model, storage, index, in that order.

:meth:`Generator.generate` is the whole path of one request, entered once from the API (or
the job runner) and going only down: :class:`~fluxgate.service.controls.Controls` stages, the KV
cache, the coalescer, the model, the object store, KV again. The miss path is a sequence of
named steps: clear the call (:meth:`~fluxgate.service.controls.Controls.before_model`), call the
model, store the image, index the record.

Output moderation (:mod:`fluxgate.policy.output_moderation`) judges the image before anything keeps
it: a ``block`` tier's unsafe image is refused and dropped (charged: the model ran). Hits and
coalesced waiters inherit the verdict of the image they are served (:meth:`Generator._vetted`).

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
from typing import Any, Literal

from ..access.auth import Principal
from ..delivery.marking import Marks
from ..delivery.variants import VARIANTS_PREFIX, original_digest
from ..errors import ApiError, not_found, storage_unavailable
from ..imaging.image_bytes import ImageBytes
from ..listings.catalog import IMAGE, CatalogWriter, Entry, image_entry, split_owner
from ..listings.usage_events import UsageEvents, UsageRecorder
from ..model.coalesce import Coalescer, Flight, Rejoin, RunAlone
from ..model.family import ModelSpec
from ..model.params import GenerationParams
from ..model.port import GeneratedImage, ImageModel, ModelInput
from ..model.upstream import UpstreamError, error_from_upstream, is_work_failure
from ..policy.output_moderation import OutputScreen, is_rejection
from ..store import keyspace
from ..store.cache_keys import CacheMode, CacheScope, cache_key
from ..store.ports import KVStore, ObjectStore
from ..store.records import GenerationRecord, is_generation_id, new_generation_id
from .controls import Admission, Charge, Controls
from .provenance_log import ProvenanceLog

log = logging.getLogger("fluxgate.generation")

# KV's edge cache for hot keys (cache entries, key records): KV's minimum cacheTtl is 30 s.
HOT_KEY_CACHE_TTL = 60
# How long a deletion holds its id (Generator.delete): far longer than any deletion takes,
# short enough that one whose request was cancelled part way does not hold it for long.
DELETION_CLAIM_SECONDS = 60


# The answer's ``X-Cache``: served from the cache, generated, or generated past it.
CacheStatus = Literal["HIT", "MISS", "BYPASS"]


@dataclass
class Outcome:
    record: GenerationRecord
    cache: CacheStatus
    image: ImageBytes | None = None  # for b64_json answers only
    model_ms: float | None = None  # time spent in the model call, for Server-Timing
    pace: Mapping[str, str] = field(default_factory=dict)  # RateLimit-* of a model call


@dataclass(frozen=True)
class Payer:
    """Whose reservation a miss charges: an async job's (``job``), or a synchronous
    request's hold (``hold``, named for an ``Idempotency-Key`` retry; else a fresh one)."""

    job: str | None = None
    hold: str | None = None


@dataclass(frozen=True)
class CachePolicy:
    """How generations are cached: per key (``key``) or shared (``global``), for how long."""

    scope: CacheScope = "key"
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
        output: OutputScreen | None = None,
        clock: Callable[[], float] = time.time,
        marks: Marks | None = None,
        provenance: ProvenanceLog | None = None,
    ) -> None:
        self._kv = kv
        self._marks = marks or Marks()  # XMP disclosure and C2PA credentials in every image
        self._provenance = provenance  # what "did we make this image?" looks up; none: off
        self._output = output or OutputScreen(None)  # output moderation of the images made
        self._usage = UsageRecorder(events, clock)  # one event per generation served
        self._catalog = catalog or CatalogWriter(None)
        self._objects = objects
        self._model = model
        self._controls = controls
        self._coalescer = coalescer
        self._cache = cache
        self._clock = clock
        self._deleting: dict[str, float] = {}  # id -> when its deletion began (delete)

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
        hold: str | None = None,
    ) -> Outcome:
        """``want_bytes``: the answer carries the image (``b64_json``). ``job``: the id of
        the async job this runs (see :meth:`Controls.before_model`); its budget is settled
        by the job when it ends, not refunded here. ``hold``: the name of a synchronous
        request's charge (:func:`~fluxgate.service.controls.retry_hold`)."""
        admission = await self.admit(principal, params)
        return await self.serve(admission, params, mode, want_bytes=want_bytes, job=job, hold=hold)

    async def serve(
        self,
        admission: Admission,
        params: GenerationParams,
        mode: CacheMode,
        *,
        want_bytes: bool = False,
        job: str | None = None,
        hold: str | None = None,
    ) -> Outcome:
        """:meth:`generate` for a request already admitted (:meth:`admit`); the usage
        event of what it served is recorded (never failing it)."""
        started = time.perf_counter()
        outcome = await self._serve(admission, params, mode, want_bytes, Payer(job, hold))
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
        payer: Payer,
    ) -> Outcome:
        key = self._cache_key(admission, params)
        if mode is not CacheMode.NORMAL:
            return await self._miss(admission, params, key, mode, payer)
        hit = await self._lookup(key, admission, want_bytes)
        if hit is None:
            hit = await self._coalesced(admission, params, key, want_bytes, payer)
        return hit  # a hit, a coalesced follower's, or this request's own miss

    async def cached(self, admission: Admission, params: GenerationParams) -> Outcome | None:
        """The cached generation for an admitted request, if any (an async submission's
        hit completes at once)."""
        started = time.perf_counter()
        hit = await self._lookup(self._cache_key(admission, params), admission, False)
        if hit is not None:
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
        payer: Payer,
    ) -> Outcome:
        """Concurrent identical requests share one model call; the others are served like
        cache hits from the leader's result.

        The leader's image refused by output moderation (``output_rejected``) is shared
        too: it is the image every waiter would get. A waiter whose own tier does not block
        then makes its own image (and pays for it); one whose tier blocks gets the 422,
        uncharged."""
        rejoined = False
        while True:
            flight = await self._coalescer.join(key)
            if flight.leads:
                return await self._lead(flight, admission, params, key, payer)
            try:
                record: GenerationRecord = await flight.outcome()
            except Rejoin:  # the leader was refused for itself: elect another
                continue
            except RunAlone:  # the leader never reported: generate for ourselves
                return await self._miss(admission, params, key, CacheMode.NORMAL, payer)
            except ApiError as exc:
                if not is_rejection(exc) or admission.output_moderation == "block":
                    raise
                if rejoined:
                    return await self._miss(admission, params, key, CacheMode.NORMAL, payer)
                # Refused under the leader's tier, not ours: the waiters that may keep the
                # image elect a leader among themselves (one model call, not one each).
                rejoined = True
                continue
            hit = await self._as_hit(Outcome(record, "MISS"), admission, want_bytes, key)
            if hit is None:  # the shared image vanished in between: generate for ourselves
                return await self._miss(admission, params, key, CacheMode.NORMAL, payer)
            return hit

    async def _lead(
        self,
        flight: Flight,
        admission: Admission,
        params: GenerationParams,
        key: str,
        payer: Payer,
    ) -> Outcome:
        """This request's miss, as the leader of its key: the waiters share the model's
        and the store's outcome (the record, or the failure of the work), never the
        leader's own refusal (its rate limit, budget or moderation): they run for
        themselves."""
        try:
            outcome = await self._miss(admission, params, key, CacheMode.NORMAL, payer)
        except Exception as exc:
            await flight.fail(exc if is_work_failure(exc) or is_rejection(exc) else None)
            raise
        except BaseException:
            await flight.fail(None)  # cancelled: nothing to share
            raise
        await flight.land(outcome.record)
        return outcome

    # -- the miss path, step by step ------------------------------------------------------

    async def _miss(
        self,
        admission: Admission,
        params: GenerationParams,
        key: str,
        mode: CacheMode,
        payer: Payer,
    ) -> Outcome:
        charge = await self._controls.before_model(
            admission, params.cost(), job=payer.job, hold=payer.hold
        )
        seed = params.seed if params.seed is not None else secrets.randbelow(2**32)
        created = int(self._clock())
        image = await self._call_model(
            ModelInput.for_params(params, admission.prompt, seed), charge
        )
        # Output moderation: before anything keeps or returns the image.
        verdict = await self._inspect(admission, image, charge)
        # AI disclosure and Content Credentials: the bytes stored, hashed and returned are
        # the marked ones, naming this generation (so its bytes are its own: see
        # disclosure.xmp_packet).
        generation = new_generation_id()
        image, digest = await self._disclose(image, params.model, created, generation, charge)
        record = self._new_record(admission, params, key, seed, image, charge, digest, created)
        record = replace(record, id=generation, output_moderation=verdict)
        await self._store(record, image, charge)
        await self._index(record, key, mode, image.data)
        await self._controls.settle(charge)  # the image is kept: its charge stands
        status: CacheStatus = "MISS" if mode is CacheMode.NORMAL else "BYPASS"
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

    async def _inspect(
        self, admission: Admission, image: GeneratedImage, charge: Charge
    ) -> dict[str, Any] | None:
        """Output moderation of the image the model made, before anything keeps, caches,
        lists or returns it: the verdict its record keeps (``None``: not checked).

        A ``block`` tier's unsafe image is refused here (``422 output_rejected``) and
        dropped; the charge stands, since the model ran. A classifier outage under
        ``fail_closed`` refunds it (``503``): the failure is ours, not the client's.
        """
        mode = admission.output_moderation
        try:
            verdict = await self._output.screen(
                mode, admission.output_moderation_failure, image.data, image.info.mime
            )
        except BaseException:
            await self._controls.refund(charge)
            raise
        if mode == "block" and verdict is not None and verdict["verdict"] == "flagged":
            log.info("generated image refused by output moderation: %s", verdict["categories"])
            await self._controls.settle(charge)  # the model ran: the charge stands
        self._output.enforce(mode, verdict)
        return verdict

    async def _disclose(
        self,
        image: GeneratedImage,
        served_name: str,
        created: int,
        generation: str,
        charge: Charge,
    ) -> tuple[GeneratedImage, str]:
        """The image as stored (with the AI-disclosure XMP and the C2PA Content
        Credentials, :mod:`fluxgate.delivery.marking`, as configured), and its SHA-256: the
        object key, the ETag, the record's ``bytes``/``sha256`` and a ``b64_json`` answer
        all describe these bytes.

        A container that cannot be marked or signed is stored as it is and logged at
        error: the model's output was checked by :func:`~fluxgate.model.port.typed_image`
        already, the client has paid for it, and failing the request would bill nothing
        while making every retry fail the same way. The log line lets the operator see
        (and fix) it.
        """
        try:
            marked = await self._marks.original(
                image.data, image.info.format, served_name, created, generation
            )
            image = replace(image, data=marked)
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
        created: int,
    ) -> GenerationRecord:
        return GenerationRecord.new(
            params,
            owner=admission.principal.scope_id,
            created=created,  # also the image's XMP CreateDate
            prompt=admission.prompt,
            seed=seed,
            object_key=keyspace.image_object(digest, image.info.extension),
            content_type=image.info.mime,
            size=image.data.size,
            sha256=digest,
            policy_version=admission.policy.document.version,
            moderated=charge.moderated,
            cache_key=keyspace.cache_digest(key),
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
                    # The generator and time the XMP names, for variants marked later: the
                    # served name (``placeholder/<short>`` offline: never the real model's).
                    "model": record.model,
                    "created": str(record.created),
                },
            )
        except Exception as exc:
            log.error("object write failed for %s: %s", record.id, type(exc).__name__)
            await self._controls.refund(charge)
            raise storage_unavailable("the image could not be stored") from exc

    async def _index(
        self, record: GenerationRecord, key: str, mode: CacheMode, image: ImageBytes
    ) -> None:
        """The record by id, the cache entry, the key's catalog (listings) and the
        provenance index (its hash and fingerprint): independent writes, made
        concurrently; none of them fails the request."""
        value = record.to_json()
        puts: list[tuple[str, str, int | None]] = [(keyspace.generation(record.id), value, None)]
        if mode is not CacheMode.NO_STORE:
            puts.append((key, value, self._cache.ttl_seconds))
        await self._write_quietly(puts, image_entry(record), (record, image))

    async def _write_quietly(
        self,
        puts: list[tuple[str, str, int | None]],
        entry: Entry,
        made: tuple[GenerationRecord, ImageBytes] | None = None,
    ) -> None:
        """KV writes (key, value, TTL), a catalog entry and, for an image just made
        (``made``), its provenance entry, made concurrently. None of them fails the
        request: a KV failure is logged (the image is still returned), the catalog and the
        provenance log their own. The stores' calls themselves are gathered, so that each
        runs as one step of the store's, not of a wrapper here."""
        logged = []
        if made is not None and self._provenance is not None:
            logged.append(self._provenance.generated(*made))
        done = await asyncio.gather(
            *(self._kv.put(k, value, ttl=ttl) for k, value, ttl in puts),
            self._catalog.put(entry),
            *logged,
            return_exceptions=True,
        )
        for (key, _, _), result in zip(puts, done, strict=False):
            if isinstance(result, Exception):
                log.error(
                    "KV write of %s failed (%s); the image is still returned",
                    key.split(":")[0],
                    type(result).__name__,
                )
        for result in done:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # a cancellation is not swallowed

    # -- hits -----------------------------------------------------------------------------

    async def _lookup(self, key: str, admission: Admission, want_bytes: bool) -> Outcome | None:
        try:
            raw = await self._kv.get(key, cache_ttl=HOT_KEY_CACHE_TTL)
            record = None if raw is None else GenerationRecord.from_json(raw)
        except Exception as exc:  # a KV outage or a damaged entry degrades to a miss
            log.warning("cache read failed: %s", type(exc).__name__)
            return None
        if record is None:
            return None
        return await self._as_hit(Outcome(record, "HIT"), admission, want_bytes, key)

    async def _as_hit(
        self, found: Outcome, admission: Admission, want_bytes: bool, key: str
    ) -> Outcome | None:
        """Serve an existing generation to the caller: free, and owned by the caller.

        First the caller's tier judges it: its prompt (:meth:`Controls.on_hit`) and its
        image (:meth:`_vetted`), before anything is written for the caller. The hit path
        touches no image bytes otherwise: the URL is signed from the record alone (a
        vanished object is found, and its entry dropped, by the file route). Only
        ``b64_json`` reads the object, since the bytes are the answer.
        """
        principal = admission.principal
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
        # After the read: a vanished object means a miss, which moderates the prompt itself.
        await self._controls.on_hit(admission, record.moderated)
        vetted = await self._vetted(admission, record, data, key)
        if vetted is None:
            return None
        record, data = vetted
        if record.owner != principal.scope_id:  # global cache: the caller gets its own record
            record = replace(
                record,
                id=new_generation_id(),
                owner=principal.scope_id,
                charged=False,
                created=int(self._clock()),
            )
            await self._write_quietly(
                [(keyspace.generation(record.id), record.to_json(), None)], image_entry(record)
            )
        elif found.cache != "HIT":  # a coalesced follower of our own key: not charged again
            record = replace(record, charged=False)
        return Outcome(record, "HIT", data if want_bytes else None)

    async def _vetted(
        self, admission: Admission, record: GenerationRecord, data: ImageBytes | None, key: str
    ) -> tuple[GenerationRecord, ImageBytes | None] | None:
        """A kept image under the caller's output moderation: it inherits its verdict; an
        image never checked (made under ``off``, or failing open) is classified now (its
        object read), and the verdict quietly kept on its record and cache entry. A
        flagged image is refused to a ``block`` tier (``422``; it stays for the tier that
        kept it). ``None``: the object is gone (regenerate)."""
        mode = admission.output_moderation
        if mode == "off":
            return record, data
        if not self._output.stands(record.output_moderation):
            if data is None:
                data = await self._read_kept(record)
                if data is None:
                    return None
            verdict = await self._output.screen(
                mode, admission.output_moderation_failure, data, record.content_type
            )
            if verdict is not None:
                record = replace(record, output_moderation=verdict)
                value = record.to_json()
                puts: list[tuple[str, str, int | None]] = [
                    (keyspace.generation(record.id), value, None),
                    (key, value, self._cache.ttl_seconds),
                ]
                await self._write_quietly(puts, image_entry(record))
        self._output.enforce(mode, record.output_moderation)
        return record, data

    async def _read_kept(self, record: GenerationRecord) -> ImageBytes | None:
        try:
            return await self._objects.read_image(record.object_key)
        except Exception as exc:
            log.warning("object read failed on a cache hit: %s", type(exc).__name__)
            return None

    # -- reads ----------------------------------------------------------------------------

    async def record(self, generation_id: str, principal: Principal) -> GenerationRecord:
        """A generation the caller may read (:meth:`Principal.owns`); someone else's is
        indistinguishable from none."""
        record = await self._stored(generation_id)
        if record is None or not principal.owns(record.owner):
            raise not_found("image")
        return record

    async def _stored(self, generation_id: str) -> GenerationRecord | None:
        if not is_generation_id(generation_id):
            return None
        raw = await self._kv.get(keyspace.generation(generation_id))
        return None if raw is None else GenerationRecord.from_json(raw)

    async def forget(self, cache_entry: str, *, quiet: bool = True) -> None:
        """Drop a cache entry whose image is gone, so that the next identical request
        regenerates instead of handing out a dead link. ``quiet``: a KV failure is only
        logged (the file route's cleanup); a deletion passes ``False`` and is told."""
        try:
            await self._kv.delete(cache_entry)
        except Exception as exc:
            if not quiet:
                raise
            log.warning("could not drop stale cache entry: %s", type(exc).__name__)

    # -- deletion -------------------------------------------------------------------------

    async def delete(self, generation_id: str, principal: Principal | None) -> GenerationRecord:
        """Delete a generation the caller owns (``principal``; ``None``: the admin, any
        key's): its object and variants, the cache entry pointing at them, its listing row,
        then its record. Someone else's is not found, like a deleted one.

        The record goes last, so that a deletion a store failed (``503
        deletion_incomplete``) is found again by its retry, which redoes every step (each
        is idempotent) and completes it.

        One deletion of an id at a time (in this process, as the Worker's isolate or the
        local server): a DELETE arriving while another of the same id is under way answers
        404 at once, as a second DELETE does, rather than all of them answering 200 (every
        step is idempotent). It does not wait for the first: on Workers a request must not
        await another's work. A claim older than :data:`DELETION_CLAIM_SECONDS` is stale (a
        Worker request cancelled part way never releases its own); a failed deletion
        releases it, so its retry completes it.
        """
        now = self._clock()
        began = self._deleting.get(generation_id)
        if began is not None and now - began < DELETION_CLAIM_SECONDS:
            raise not_found("image")
        self._deleting[generation_id] = now
        try:
            return await self._delete(generation_id, principal)
        finally:
            if self._deleting.get(generation_id) == now:
                del self._deleting[generation_id]

    async def _delete(self, generation_id: str, principal: Principal | None) -> GenerationRecord:
        record = await self._stored(generation_id)
        if record is None or (principal is not None and not principal.owns(record.owner)):
            raise not_found("image")
        try:
            await self._erase(record, admin=principal is None)
        except Exception as exc:
            log.error("deletion of %s incomplete: %s", record.id, type(exc).__name__)
            raise ApiError(
                503,
                "deletion_incomplete",
                "The image was only partly deleted (a store failed). Retry the DELETE: it "
                "completes the deletion.",
                headers={"Retry-After": "1"},
            ) from exc
        return record

    async def _erase(self, record: GenerationRecord, *, admin: bool) -> None:
        """The image's bytes belong to the key that paid for them (the object's ``owner``
        metadata). A record another key got from a shared (``global``) cache entry is
        deleted alone, the bytes kept for their owner, unless the admin deletes it."""
        account, _ = split_owner(record.owner)
        info = await self._objects.head(record.object_key)
        owner = account if info is None else info.custom_metadata.get("owner", account)
        if admin or owner == account:
            # The original first, then the listing: a variant being made meanwhile is either
            # listed here, or dropped by its maker, which checks the original once stored.
            await self._objects.delete(record.object_key)
            digest = original_digest(record.object_key)
            if digest is not None:
                made = await self._objects.list(f"{VARIANTS_PREFIX}{digest}/")
                await asyncio.gather(*(self._objects.delete(v.key) for v in made))
            await self._forget_entry(record)
        await self._catalog.remove(IMAGE, record.id, account)
        await self._kv.delete(keyspace.generation(record.id))

    async def _forget_entry(self, record: GenerationRecord) -> None:
        """The cache entry, if it still points at these bytes (a later ``no-cache``
        generation may have replaced it with another image, which stays cached)."""
        if not record.cache_key:
            return
        entry = keyspace.cache_entry(record.cache_key)
        raw = await self._kv.get(entry)
        if raw is None:
            return
        try:
            cached = GenerationRecord.from_json(raw).object_key
        except Exception:
            cached = record.object_key  # a damaged entry is no use to anyone
        if cached == record.object_key:
            await self.forget(entry, quiet=False)
