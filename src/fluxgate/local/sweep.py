"""The local runtime's retention sweep: what R2's lifecycle rules do on Cloudflare.

With ``FLUXGATE_IMAGE_RETENTION_DAYS`` set, an image older than the retention is deleted:
its original and variants (the object store), and every key's listing rows of that age
(the catalog). Its record and cache entry need nothing: they were written to expire
within the retention (:class:`~fluxgate.delivery.retention.RetainedKV`), and an expired KV entry
is never read again. ``fluxgate serve`` sweeps at start and every :data:`SWEEP_EVERY`
seconds; ``fluxgate sweep`` sweeps once (for a data directory no server runs on).

An original's age is its object's ``created`` metadata (the generation's time, the
image's XMP ``CreateDate``), as R2 counts an object's age from its upload: an image
stored again later (the same bytes made again) starts again. An object without that
metadata is not one the gateway made, and is left alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..delivery.retention import DAY
from ..delivery.variants import VARIANTS_PREFIX, original_digest
from ..listings.catalog import IMAGE
from ..store.ports import ObjectInfo, ObjectStore
from .catalog_sqlite import SqliteCatalog

log = logging.getLogger("fluxgate.retention")

SWEEP_EVERY = 3600.0
ORIGINALS_PREFIX = "images/"


@dataclass(frozen=True)
class Swept:
    images: int  # originals deleted (their variants with them)
    rows: int  # listing rows deleted


def _created(info: ObjectInfo) -> int | None:
    text = info.custom_metadata.get("created", "")
    return int(text) if text.isdigit() else None


class Sweeper:
    """Deletes what outlived ``days``, by ``clock``'s time."""

    def __init__(
        self,
        objects: ObjectStore,
        catalog: SqliteCatalog | None,
        days: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._objects = objects
        self._catalog = catalog
        self._seconds = days * DAY
        self._clock = clock

    async def sweep(self) -> Swept:
        cutoff = int(self._clock()) - self._seconds
        images = 0
        for info in await self._objects.list(ORIGINALS_PREFIX):
            created = _created(info)
            digest = original_digest(info.key)
            if created is None or created >= cutoff or digest is None:
                continue
            await self._objects.delete(info.key)  # first: no variant can be made after it
            for variant in await self._objects.list(f"{VARIANTS_PREFIX}{digest}/"):
                await self._objects.delete(variant.key)
            images += 1
        rows = 0 if self._catalog is None else await self._catalog.expire(IMAGE, cutoff)
        if images or rows:
            log.info("retention sweep: %d images and %d listing rows deleted", images, rows)
        return Swept(images, rows)

    async def periodically(self, every: float = SWEEP_EVERY) -> None:
        """Sweep now and every ``every`` seconds until cancelled; a failed sweep is logged
        and tried again at the next turn."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.error(
                    "retention sweep failed (%s); retried in %.0f s", type(exc).__name__, every
                )
            await asyncio.sleep(every)
