"""The catalog on a local SQLite file (one file for every key; the Durable Object's peer)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..catalog import CatalogTable, Entry, Page, Position
from .sqlite import connect

T = TypeVar("T")


class SqliteCatalog:
    def __init__(self, path: Path | str, **limits: int) -> None:
        """``limits``: :class:`~fluxgate.catalog.CatalogTable`'s retention (tests)."""
        self._db = connect(path)
        self._lock = threading.Lock()
        self._table = CatalogTable(
            lambda sql, params: self._db.execute(sql, tuple(params)).fetchall(), **limits
        )

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def put(self, entry: Entry) -> None:
        await self._run(self._table.put, entry)

    async def page(
        self, account: str, kind: str, user: str | None, limit: int, after: Position | None
    ) -> Page:
        return await self._run(self._table.page, account, kind, user, limit, after)

    def close(self) -> None:
        self._db.close()
