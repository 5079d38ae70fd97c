"""Image retention (``IMAGE_RETENTION_DAYS``): what keeps an image no longer than that.

An image is four things in four stores: its object and variants (R2 or a directory), its
record and cache entry (KV), its listing row (the catalog). Each store forgets it by its
own means, so that nothing has to run at the deadline:

- KV: the record and cache entry are written with an expiration no later than the
  retention (:class:`RetainedKV`, wrapped around the generator's KV); KV drops them itself.
- The catalog: rows older than the retention are not listed (``CatalogTable.page``).
- Objects: on Workers an R2 lifecycle rule per prefix (``images/``, ``variants/``),
  set once with ``wrangler r2 bucket lifecycle add`` (docs/operations.md, "Retention");
  locally the sweep (:func:`fluxgate.local.sweep.sweep`), which also removes the expired rows.

Pydantic-free and runtime-agnostic.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..store.keyspace import IMAGE_ENTRIES
from ..store.ports import KVPage, KVStore

DAY = 86400


class RetainedKV:
    """A :class:`~fluxgate.store.ports.KVStore` whose image entries expire within the
    retention: a write without a TTL (a record) gets the retention's, a longer one (a
    cache entry under ``CACHE_TTL_SECONDS``) is shortened to it. A record rewritten later
    (a verdict kept on a hit) expires a retention after that write, at the latest."""

    def __init__(self, inner: KVStore, seconds: int) -> None:
        self._inner = inner
        self._seconds = seconds

    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        return await self._inner.get(key, cache_ttl=cache_ttl)

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        if key.startswith(IMAGE_ENTRIES):
            ttl = self._seconds if ttl is None else min(ttl, self._seconds)
        await self._inner.put(key, value, ttl=ttl, metadata=metadata)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)

    async def list(self, prefix: str, *, limit: int = 1000, cursor: str | None = None) -> KVPage:
        return await self._inner.list(prefix, limit=limit, cursor=cursor)


def retained(kv: KVStore, days: int | None) -> KVStore:
    """``kv`` as the generator writes image entries: unchanged without a retention."""
    return kv if days is None else RetainedKV(kv, days * DAY)
