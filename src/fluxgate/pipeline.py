"""The generation pipeline: policy, cache, model, storage, signed URL.

Failure order is the point of this module. An image is written to the object store before
anything in KV can point at it; a failed object write fails the request and writes no cache
entry; a failed KV write (record or cache) is logged and the image is still returned, because
the client has paid for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from . import b64
from .auth import KeyStore, Principal
from .cache import CacheMode, cache_key
from .coalesce import Coalescer, InflightCoalescer, NotShared
from .controls import CallerPolicy, Charge, Controls
from .errors import not_found, storage_unavailable
from .files import object_path
from .ledger import BudgetLedger
from .model import ImageModel, ModelInput, ReferenceImage
from .models import Cost, Generation, GenerationRequest, ImageData
from .moderation import Moderator
from .policy_store import PolicyStore
from .pricing import estimate
from .ratelimit import RateLimiter
from .settings import Settings
from .signing import UrlSigner
from .storage import KVStore, ObjectStore, read_all
from .upstream import UpstreamError, error_from_upstream, is_work_failure

log = logging.getLogger("fluxgate.pipeline")

_RECORD_ID_CHARS = set("0123456789abcdef")
# KV's edge cache for hot keys (cache entries, key records): KV's minimum cacheTtl is 30 s.
HOT_KEY_CACHE_TTL = 60


@dataclass
class GenerationRecord:
    """What KV keeps about one generation: enough to answer again without the image."""

    id: str
    owner: str
    created: int
    model: str
    prompt_sha256: str
    width: int
    height: int
    steps: int
    guidance: float | None
    seed: int
    object_key: str
    content_type: str
    bytes: int
    sha256: str
    reference_images: list[str] = field(default_factory=list)
    reference_sizes: list[list[int]] = field(default_factory=list)
    charged: bool = True
    policy_version: int = 1
    moderated: bool = False
    cache_key: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> GenerationRecord:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in json.loads(raw).items() if k in known})


@dataclass(frozen=True)
class Prepared:
    policy: CallerPolicy
    prompt: str
    key: str


@dataclass
class Outcome:
    record: GenerationRecord
    cache: str  # HIT | MISS | BYPASS
    image: bytes | None = None
    model_ms: float | None = None  # time spent in the model call, for Server-Timing


def build_controls(
    settings: Settings,
    kv: KVStore,
    *,
    limiter: RateLimiter,
    ledger: BudgetLedger,
    moderator: Moderator,
    clock: Callable[[], float] = time.time,
) -> Controls:
    """The abuse and cost controls, with the policy document kept in ``kv``."""
    policies = PolicyStore(
        kv, settings.default_policy(), cache_seconds=settings.policy_cache_seconds
    )
    return Controls(
        policies=policies, limiter=limiter, ledger=ledger, moderator=moderator, clock=clock
    )


def new_generation_id() -> str:
    return "img_" + secrets.token_hex(12)


class Gateway:
    """Everything a request needs, wired once per process (or per Workers isolate)."""

    def __init__(
        self,
        *,
        settings: Settings,
        kv: KVStore,
        objects: ObjectStore,
        model: ImageModel,
        signer: UrlSigner,
        controls: Controls,
        admin_token: str | None = None,
        coalescer: Coalescer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.kv = kv
        self.objects = objects
        self.model = model
        self.signer = signer
        self.controls = controls
        self.coalescer: Coalescer = coalescer or InflightCoalescer()
        self.admin_token = admin_token
        self.keys = KeyStore(kv, clock=clock)
        self.clock = clock
        self.jobs: Any = None  # fluxgate.async_jobs.Jobs, wired by the runtime

    async def authenticate(self, authorization: str | None) -> Principal:
        return await self.keys.authenticate(
            authorization, signer=self.signer, audience=self.settings.token_audience
        )

    # -- generation -----------------------------------------------------------------------

    async def prepare(
        self,
        request: GenerationRequest,
        references: tuple[ReferenceImage, ...],
        principal: Principal,
    ) -> Prepared:
        """Policy and tier checks, the canonical prompt and the cache key: everything that
        is decided before the cache is read (and that refuses a request synchronously)."""
        policy = await self.controls.for_caller(principal)
        self.controls.check_request(policy, request, references)
        prompt = policy.prompt_policy.apply(request.prompt)
        scope = principal.scope_id if self.settings.cache_scope == "key" else "*"
        key = cache_key(
            model=self.model.name,
            prompt=prompt,
            width=request.width,
            height=request.height,
            steps=request.steps,
            guidance=request.guidance,
            seed=request.seed,
            references=[r.sha256 for r in references],
            scope=scope,
        )
        return Prepared(policy, prompt, key)

    async def cached(
        self, prepared: Prepared, principal: Principal, want_bytes: bool
    ) -> Outcome | None:
        hit = await self._lookup(prepared.key, principal, want_bytes)
        if hit is not None:
            await self._moderate_hit(prepared, hit)
        return hit

    async def _moderate_hit(self, prepared: Prepared, hit: Outcome) -> None:
        if prepared.policy.limits.moderation != "off" and not hit.record.moderated:
            await self.controls.moderate(prepared.policy, prepared.prompt)  # made before it applied

    async def generate(
        self,
        request: GenerationRequest,
        references: tuple[ReferenceImage, ...],
        principal: Principal,
        mode: CacheMode,
        *,
        admitted: bool = False,
        reservation: str | None = None,
    ) -> Outcome:
        """``admitted``: the rate limit was already counted (an async job, at submission).
        ``reservation``: the budget reservation's id, for a job: reserved at most once
        whatever the attempts, and settled by the job when it ends (not refunded here)."""
        prepared = await self.prepare(request, references, principal)
        policy, prompt, key = prepared.policy, prepared.prompt, prepared.key

        def run() -> Awaitable[Outcome]:
            return self._generate(
                request,
                references,
                principal,
                policy,
                prompt,
                key,
                mode,
                admitted=admitted,
                reservation=reservation,
            )

        async def lead() -> Outcome:
            # Waiters share the model's and the store's outcome, never the leader's own
            # refusal (its rate limit, budget or moderation): they run for themselves.
            try:
                return await run()
            except Exception as exc:
                if is_work_failure(exc):
                    raise
                raise NotShared(exc) from exc

        want_bytes = request.response_format == "b64_json"
        if mode is not CacheMode.NORMAL:
            return await run()
        hit = await self._lookup(key, principal, want_bytes)
        if hit is None:
            # Concurrent identical requests share one model call; the others are served
            # like cache hits from the leader's result.
            outcome, leader = await self.coalescer.run(key, lead)
            if leader:
                return outcome
            hit = await self._as_hit(outcome, principal, want_bytes)
            if hit is None:  # the shared image vanished in between: generate for ourselves
                return await run()
        await self._moderate_hit(prepared, hit)
        return hit

    async def _generate(
        self,
        request: GenerationRequest,
        references: tuple[ReferenceImage, ...],
        principal: Principal,
        policy: CallerPolicy,
        prompt: str,
        key: str,
        mode: CacheMode,
        *,
        admitted: bool = False,
        reservation: str | None = None,
    ) -> Outcome:
        """The miss path: limits, moderation, budget, the model, storage, KV."""
        if not admitted:
            await self.controls.admit(policy, principal)
        moderated = await self.controls.moderate(policy, prompt)
        seed = request.seed if request.seed is not None else secrets.randbelow(2**32)
        model_input = ModelInput(
            prompt=prompt,
            width=request.width,
            height=request.height,
            steps=request.steps,
            seed=seed,
            guidance=request.guidance,
            references=references,
        )
        cost = estimate(
            request.width,
            request.height,
            request.steps,
            [(r.info.width, r.info.height) for r in references],
        )
        charge = await self.controls.reserve(policy, principal, cost, reservation=reservation)
        try:
            image = await self.model.generate(model_input)
        except UpstreamError as exc:
            await self._refund(charge)
            raise error_from_upstream(exc) from exc
        except BaseException:
            await self._refund(charge)
            raise

        digest = hashlib.sha256(image.data).hexdigest()
        record = GenerationRecord(
            id=new_generation_id(),
            owner=principal.scope_id,
            created=int(self.clock()),
            model=self.model.name,
            prompt_sha256=hashlib.sha256(prompt.encode()).hexdigest(),
            width=request.width,
            height=request.height,
            steps=request.steps,
            guidance=request.guidance,
            seed=seed,
            object_key=f"images/{digest}.{image.info.extension}",
            content_type=image.info.mime,
            bytes=len(image.data),
            sha256=digest,
            reference_images=[r.sha256 for r in references],
            reference_sizes=[[r.info.width, r.info.height] for r in references],
            policy_version=policy.document.version,
            moderated=moderated,
            cache_key=key.removeprefix("cache:"),
        )
        try:
            await self.objects.put(
                record.object_key,
                image.data,
                content_type=record.content_type,
                custom_metadata={
                    "seed": str(seed),
                    "size": f"{request.width}x{request.height}",
                    "params": key.removeprefix("cache:"),
                    "owner": principal.key.id,
                    "generation": record.id,
                },
            )
        except Exception as exc:
            log.error("object write failed for %s: %s", record.id, type(exc).__name__)
            await self._refund(charge)  # the client gets no image: it is not billed
            raise storage_unavailable("the image could not be stored") from exc

        # The record and the cache entry are independent writes: made concurrently.
        value = record.to_json()
        writes = [self._put_quietly(f"gen:{record.id}", value, None)]
        if mode is not CacheMode.NO_STORE:
            writes.append(self._put_quietly(key, value, self.settings.cache_ttl_seconds))
        await asyncio.gather(*writes)
        status = "MISS" if mode is CacheMode.NORMAL else "BYPASS"
        return Outcome(record, status, image.data, model_ms=image.upstream_ms)

    async def _refund(self, charge: Charge) -> None:
        """A request's failed charge is refunded now. A job's reservation is not: the job
        settles it when it ends, since this attempt may be retried (and reserve nothing
        more), or may have lost its lease to another attempt that succeeds."""
        if charge.reservation is None:
            await self.controls.refund(charge)

    async def _lookup(self, key: str, principal: Principal, want_bytes: bool) -> Outcome | None:
        try:
            raw = await self.kv.get(key, cache_ttl=HOT_KEY_CACHE_TTL)
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
                body = await self.objects.get(record.object_key)
                data = await read_all(body) if body is not None else None
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
                created=int(self.clock()),
            )
            await self._put_quietly(f"gen:{record.id}", record.to_json(), None)
        elif found.cache != "HIT":  # a coalesced follower of our own key: not charged again
            record = replace(record, charged=False)
        return Outcome(record, "HIT", data if want_bytes else None)

    async def _put_quietly(self, key: str, value: str, ttl: int | None) -> None:
        try:
            await self.kv.put(key, value, ttl=ttl)
        except Exception as exc:
            log.error(
                "KV write of %s failed (%s); the image is still returned",
                key.split(":")[0],
                type(exc).__name__,
            )

    # -- reads ----------------------------------------------------------------------------

    async def get_record(self, generation_id: str, principal: Principal) -> GenerationRecord:
        """A generation the caller may read: its own, or (for a key) any of its end users'.

        Someone else's is indistinguishable from none."""
        if not (
            generation_id.startswith("img_")
            and len(generation_id) == 28
            and set(generation_id[4:]) <= _RECORD_ID_CHARS
        ):
            raise not_found("image")
        raw = await self.kv.get(f"gen:{generation_id}")
        if raw is None:
            raise not_found("image")
        record = GenerationRecord.from_json(raw)
        mine = record.owner == principal.scope_id or (
            principal.subject is None and record.owner.startswith(principal.key.id + "/")
        )
        if not mine:
            raise not_found("image")
        return record

    # -- responses ------------------------------------------------------------------------

    def url_ttl(self, requested: int | None) -> int:
        if requested is None:
            return self.settings.signed_url_ttl_seconds
        return min(requested, self.settings.signed_url_max_ttl_seconds)

    def signed_url(self, record: GenerationRecord, base_url: str, ttl: int) -> tuple[str, int]:
        expires = int(self.clock()) + ttl
        path = object_path(record.object_key)
        base = (self.settings.public_base_url or base_url).rstrip("/")
        query = self.signer.sign(path, expires, cache_key=record.cache_key)
        return f"{base}{path}?{query}", expires

    def describe(
        self,
        record: GenerationRecord,
        *,
        base_url: str,
        cached: bool,
        url_ttl: int | None = None,
        image: bytes | None = None,
    ) -> Generation:
        if image is not None:
            data = ImageData(b64_json=b64.encode(image))
        else:
            url, expires = self.signed_url(record, base_url, self.url_ttl(url_ttl))
            data = ImageData(url=url, expires_at=expires)
        cost = estimate(
            record.width, record.height, record.steps, [tuple(s) for s in record.reference_sizes]
        )
        return Generation(
            id=record.id,
            created=record.created,
            model=record.model,
            data=[data],
            seed=record.seed,
            width=record.width,
            height=record.height,
            steps=record.steps,
            guidance=record.guidance,
            content_type=record.content_type,
            bytes=record.bytes,
            sha256=record.sha256,
            reference_images=record.reference_images,
            cached=cached,
            cost=Cost(**cost.as_dict(charged=record.charged and not cached)),
        )
