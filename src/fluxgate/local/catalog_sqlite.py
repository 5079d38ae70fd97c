"""The catalog on a local SQLite file (one file for every key; the Durable Object's peer).

Every statement runs on one thread, in the order it was asked for. A write is handed to
that thread and not waited for: a miss does not wait on disk for its listing row (it
measured 0.8 ms of the local miss's overhead), while a read, queued behind every earlier
write, still sees them all, so listings keep the Durable Object's read-your-writes. A
write that fails is logged here, as :class:`~fluxgate.listings.catalog.CatalogWriter` logs the
Worker's: the listing misses that entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..listings.catalog import CatalogTable, Entry, Page, Position
from .sqlite import connect

T = TypeVar("T")
log = logging.getLogger("fluxgate.catalog")


class SqliteCatalog:
    def __init__(
        self,
        path: Path | str,
        *,
        image_retention_days: int | None = None,
        clock: Callable[[], float] = time.time,
        **limits: int,
    ) -> None:
        """``limits``: :class:`~fluxgate.listings.catalog.CatalogTable`'s row caps (tests);
        ``image_retention_days``: image rows older than this are not listed."""
        self._db = connect(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        self._table = CatalogTable(
            lambda sql, params: self._db.execute(sql, tuple(params)).fetchall(),
            image_retention_days=image_retention_days,
            clock=clock,
            **limits,
        )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.wrap_future(self._thread.submit(fn, *args))

    async def put(self, entry: Entry) -> None:
        self._thread.submit(self._table.put, entry).add_done_callback(_logged(entry))

    async def page(
        self, account: str, kind: str, user: str | None, limit: int, after: Position | None
    ) -> Page:
        return await self._run(self._table.page, account, kind, user, limit, after)

    async def delete(self, kind: str, entry_id: str, account: str) -> None:
        """Waited for, unlike :meth:`put`: a deletion answers only once its row is gone."""
        await self._run(self._table.delete, kind, entry_id, account)

    async def expire(self, kind: str, before: int) -> int:
        """Every key's rows of ``kind`` created before ``before`` removed (the sweep)."""
        return await self._run(self._table.expire, kind, before)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        self._db.close()


def _logged(entry: Entry) -> Callable[[Future[Any]], None]:
    def check(done: Future[Any]) -> None:
        error = done.exception()
        if error is not None:
            log.error(
                "catalog write for %s %s failed (%s); it will be missing from listings",
                entry.kind,
                entry.id,
                type(error).__name__,
            )

    return check
