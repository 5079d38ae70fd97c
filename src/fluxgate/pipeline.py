"""The generation pipeline: policy, cache, model, storage, signed URL.

Failure order is the point of this module. An image is written to the object store before
anything in KV can point at it; a failed object write fails the request and writes no cache
entry; a failed KV write (record or cache) is logged and the image is still returned, because
the client has paid for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from .auth import KeyRecord, KeyStore
from .cache import CacheMode, cache_key
from .errors import not_found, storage_unavailable
from .files import object_path
from .model import ImageModel, ModelInput, ReferenceImage
from .models import Cost, Generation, GenerationRequest, ImageData
from .policy import PromptPolicy
from .pricing import estimate
from .settings import Settings
from .signing import UrlSigner
from .storage import KVStore, ObjectStore, read_all
from .upstream import UpstreamError, error_from_upstream

log = logging.getLogger("fluxgate.pipeline")

_RECORD_ID_CHARS = set("0123456789abcdef")


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

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> GenerationRecord:
        return cls(**json.loads(raw))


@dataclass
class Outcome:
    record: GenerationRecord
    cache: str  # HIT | MISS | BYPASS
    image: bytes | None = None


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
        admin_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.kv = kv
        self.objects = objects
        self.model = model
        self.signer = signer
        self.admin_token = admin_token
        self.keys = KeyStore(kv)
        self.policy: PromptPolicy = settings.prompt_policy()
        self.clock = clock

    # -- generation -----------------------------------------------------------------------

    async def generate(
        self,
        request: GenerationRequest,
        references: tuple[ReferenceImage, ...],
        owner: KeyRecord,
        mode: CacheMode,
    ) -> Outcome:
        prompt = self.policy.apply(request.prompt)
        scope = owner.id if self.settings.cache_scope == "key" else "*"
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
        want_bytes = request.response_format == "b64_json"
        if mode is CacheMode.NORMAL:
            hit = await self._lookup(key, owner, want_bytes)
            if hit is not None:
                return hit

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
        try:
            image = await self.model.generate(model_input)
        except UpstreamError as exc:
            raise error_from_upstream(exc) from exc

        digest = hashlib.sha256(image.data).hexdigest()
        record = GenerationRecord(
            id=new_generation_id(),
            owner=owner.id,
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
                    "owner": owner.id,
                    "generation": record.id,
                },
            )
        except Exception as exc:
            log.error("object write failed for %s: %s", record.id, type(exc).__name__)
            raise storage_unavailable("the image could not be stored") from exc

        await self._put_quietly(f"gen:{record.id}", record.to_json(), None)
        if mode is not CacheMode.NO_STORE:
            await self._put_quietly(key, record.to_json(), self.settings.cache_ttl_seconds)
        return Outcome(record, "MISS" if mode is CacheMode.NORMAL else "BYPASS", image.data)

    async def _lookup(self, key: str, owner: KeyRecord, want_bytes: bool) -> Outcome | None:
        try:
            raw = await self.kv.get(key)
        except Exception as exc:  # a KV outage degrades to a miss, it does not fail
            log.warning("cache read failed: %s", type(exc).__name__)
            return None
        if raw is None:
            return None
        record = GenerationRecord.from_json(raw)
        data: bytes | None = None
        try:
            if want_bytes:
                body = await self.objects.get(record.object_key)
                data = await read_all(body) if body is not None else None
                present = data is not None
            else:
                present = await self.objects.head(record.object_key) is not None
        except Exception as exc:
            log.warning("object check failed on a cache hit: %s", type(exc).__name__)
            return None
        if not present:
            log.info("stale cache entry %s: object gone; regenerating", key[:16])
            return None
        if record.owner != owner.id:  # global cache: the caller gets its own record
            record = GenerationRecord(
                **{
                    **asdict(record),
                    "id": new_generation_id(),
                    "owner": owner.id,
                    "charged": False,
                    "created": int(self.clock()),
                }
            )
            await self._put_quietly(f"gen:{record.id}", record.to_json(), None)
        return Outcome(record, "HIT", data)

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

    async def get_record(self, generation_id: str, owner: KeyRecord) -> GenerationRecord:
        """A generation owned by the caller; someone else's is indistinguishable from none."""
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
        if record.owner != owner.id:
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
        return f"{base}{path}?{self.signer.sign(path, expires)}", expires

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
            data = ImageData(b64_json=base64.b64encode(image).decode())
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
