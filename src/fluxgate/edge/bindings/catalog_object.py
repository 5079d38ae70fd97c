"""Listings on Workers: one Durable Object per API key, SQLite inside.

KV's ``list`` would show a new generation up to a minute late, and in key order. The
catalog of a key (its images and jobs, its end users' included) lives in one object, which
runs :class:`~fluxgate.listings.catalog.CatalogTable` on its own SQLite storage: a write is seen by
the next read. ``CatalogObject`` is the object (exported by the Worker entry);
``WorkersCatalog`` is the client the gateway uses. Only strings and integers cross the RPC
boundary ("" stands for none).
"""

from __future__ import annotations

import json
from typing import Any

from workers import DurableObject

from ...listings.catalog import CatalogTable, Entry, Page, Position, entry_from_row
from ..ffi import py_value, sql_executor, unwrap
from ..front.config import retention_days


class CatalogObject(DurableObject):
    """The Durable Object: RPC methods over :class:`~fluxgate.listings.catalog.CatalogTable`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._table = CatalogTable(
            sql_executor(self.ctx.storage), image_retention_days=retention_days(env)
        )

    async def put(
        self,
        kind: str,
        entry_id: str,
        account: str,
        user: str,
        created: int,
        updated: int,
        status: str,
        summary: str,
    ) -> bool:
        entry = entry_from_row(kind, account, entry_id, user, created, updated, status, summary)
        return self._table.put(entry)

    async def page(
        self, account: str, kind: str, user: str, limit: int, after_created: int, after_seq: int
    ) -> list[Any]:
        """``[next_created, next_seq, rows]`` (-1, -1 on the last page); each row is
        ``[id, user, created, updated, status, summary]``."""
        after = Position(int(after_created), int(after_seq)) if int(after_seq) > 0 else None
        page = self._table.page(str(account), str(kind), str(user or "") or None, int(limit), after)
        rows = [
            [e.id, e.user or "", e.created, e.updated, e.status or "", json.dumps(e.summary)]
            for e in page.entries
        ]
        following = page.next or Position(-1, -1)
        return [following.created, following.seq, rows]

    async def delete(self, kind: str, entry_id: str, account: str) -> bool:
        return self._table.delete(str(kind), str(entry_id), str(account))


class WorkersCatalog:
    """The gateway's :class:`~fluxgate.listings.catalog.Catalog`, calling one object per key."""

    def __init__(self, namespace: Any) -> None:
        self._namespace = unwrap(namespace)

    def _stub(self, account: str) -> Any:
        return self._namespace.get(self._namespace.idFromName(account))

    async def put(self, entry: Entry) -> None:
        await self._stub(entry.account).put(
            entry.kind,
            entry.id,
            entry.account,
            entry.user or "",
            entry.created,
            entry.updated,
            entry.status or "",
            json.dumps(entry.summary, separators=(",", ":")),
        )

    async def page(
        self, account: str, kind: str, user: str | None, limit: int, after: Position | None
    ) -> Page:
        start = after or Position(-1, -1)
        next_created, next_seq, rows = py_value(
            await self._stub(account).page(
                account, kind, user or "", limit, start.created, start.seq
            )
        )
        entries = [entry_from_row(kind, account, *row) for row in rows]
        following = Position(int(next_created), int(next_seq)) if int(next_seq) > 0 else None
        return Page(entries, following)

    async def delete(self, kind: str, entry_id: str, account: str) -> None:
        await self._stub(account).delete(kind, entry_id, account)
