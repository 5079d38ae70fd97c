"""Response bodies: a generation record or a job as the client sees it.

The core hands back records; this module turns them into the API's bodies, signing a fresh
URL for each answer (a URL never outlives ``SIGNED_URL_MAX_TTL_SECONDS``, and every answer,
a cache hit's included, gets its own). A job's webhook carries the same body as ``GET
/v1/jobs/{id}``, so the webhook sender is given :meth:`Presenter.job` at wiring time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..delivery.files import object_path, variant_path
from ..delivery.signing import UrlSigner
from ..delivery.variants import Variant, parse_variants
from ..jobs.table import Job
from ..listings.catalog import Entry
from ..service.gateway import Gateway
from ..service.settings import Settings
from ..store.records import GenerationRecord
from .schemas import Cost, Generation, ImageData, OutputModeration


class Presenter:
    def __init__(
        self, settings: Settings, signer: UrlSigner, clock: Callable[[], float] = time.time
    ) -> None:
        self._settings = settings
        self._signer = signer
        self._clock = clock

    def _origin(self, base_url: str) -> str:
        """``PUBLIC_BASE_URL`` when set, else the request's own origin."""
        return (self._settings.public_base_url or base_url).rstrip("/")

    def url_ttl(self, requested: int | None) -> int:
        if requested is None:
            return self._settings.signed_url_ttl_seconds
        return min(requested, self._settings.signed_url_max_ttl_seconds)

    def signed_url(self, record: GenerationRecord, base_url: str, ttl: int) -> tuple[str, int]:
        return self._sign(record.object_key, record.cache_key, base_url, ttl)

    def _sign(self, object_key: str, cache_key: str, base_url: str, ttl: int) -> tuple[str, int]:
        expires = int(self._clock()) + ttl
        return self._sign_path(object_path(object_key), cache_key, base_url, expires), expires

    def _sign_path(self, path: str, cache_key: str, base_url: str, expires: int) -> str:
        query = self._signer.sign(path, expires, cache_key=cache_key)
        return f"{self._origin(base_url)}{path}?{query}"

    def variant_urls(
        self, record: GenerationRecord, variants: tuple[Variant, ...], base_url: str, expires: int
    ) -> dict[str, str]:
        """A signed URL per variant, expiring with the image's own URL. Only names the
        request validated are signed, so no signed URL names a variant outside the set."""
        return {
            v.name: self._sign_path(
                variant_path(record.object_key, v), record.cache_key, base_url, expires
            )
            for v in variants
        }

    def generation(
        self,
        record: GenerationRecord,
        *,
        base_url: str,
        cached: bool,
        url_ttl: int | None = None,
        b64_json: str | None = None,
        variants: tuple[Variant, ...] = (),
    ) -> Generation:
        """``b64_json``: answer with the image (base64) instead of a signed URL.
        ``variants``: signed URLs of these variants too (``data[0].variants``)."""
        ttl = self.url_ttl(url_ttl)
        if b64_json is not None:
            expires = int(self._clock()) + ttl
            data = ImageData(b64_json=b64_json)
        else:
            url, expires = self.signed_url(record, base_url, ttl)
            data = ImageData(url=url, expires_at=expires)
        if variants:
            signed = self.variant_urls(record, variants, base_url, expires)
            data = data.model_copy(update={"variants": signed})
        cost = record.cost()
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
            cost=Cost.model_validate(cost.as_dict(charged=record.charged and not cached)),
            output_moderation=_verdict(record),
        )

    def job(self, job: Job, base_url: str) -> dict[str, Any]:
        """The body of ``GET /v1/jobs/{id}`` (and of the 202); ``result`` is exactly a
        synchronous generation's body."""
        body: dict[str, Any] = {
            "id": job.id,
            "object": "image.job",
            "status": job.status,
            "created": job.created,
            "updated": job.updated,
            "status_url": f"{self._origin(base_url)}/v1/jobs/{job.id}",
        }
        if job.result is not None:
            record = GenerationRecord.from_dict(job.result["record"])
            cached = bool(job.result.get("cached"))
            variants = parse_variants(job.request.get("variants") or ())
            body["result"] = self.generation(
                record, base_url=base_url, cached=cached, variants=variants
            ).to_json()
        if job.error is not None:
            body["error"] = job.error
        if job.webhook_url is not None:
            body["webhook"] = {"url": job.webhook_url, **(job.webhook or {"state": "pending"})}
        return body

    def image_item(self, entry: Entry, base_url: str) -> dict[str, Any]:
        """An image of a listing (``ImageItem``), with a URL signed for this answer."""
        summary = entry.summary
        url, expires = self._sign(
            summary["object_key"], summary.get("cache_key", ""), base_url, self.url_ttl(None)
        )
        return {
            "id": entry.id,
            "object": "image",
            "created": entry.created,
            "model": summary["model"],
            "width": summary["width"],
            "height": summary["height"],
            "seed": summary["seed"],
            "steps": summary["steps"],
            "content_type": summary["content_type"],
            "bytes": summary["bytes"],
            "user": entry.user,
            "url": url,
            "expires_at": expires,
            "output_moderation": summary.get("output_moderation"),
        }

    def job_item(self, entry: Entry, base_url: str) -> dict[str, Any]:
        """A job of a listing (``JobItem``): its state as of its last transition."""
        return {
            "id": entry.id,
            "object": "image.job",
            "status": entry.status,
            "created": entry.created,
            "updated": entry.updated,
            "user": entry.user,
            "status_url": f"{self._origin(base_url)}/v1/jobs/{entry.id}",
            "image_id": entry.summary.get("image_id"),
            "error": entry.summary.get("error"),
        }


def _verdict(record: GenerationRecord) -> OutputModeration | None:
    """The record's output moderation verdict (null when unchecked, or an older record)."""
    found = record.output_moderation
    return None if found is None else OutputModeration.model_validate(found)


def presenter(gw: Gateway) -> Presenter:
    """The API's view of ``gw``'s records. Made per answer: it holds three references, and
    the gateway below knows nothing of the API's bodies."""
    return Presenter(gw.settings, gw.signer, gw.clock)
