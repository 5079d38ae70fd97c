"""The ledger on a local SQLite file: transactional across threads and processes."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..ledger import DaySpend, Ledger, Reservation, Usage
from .sqlite import connect

T = TypeVar("T")


class SqliteLedger:
    def __init__(self, path: Path | str) -> None:
        self._db = connect(path)
        self._lock = threading.Lock()
        self._ledger = Ledger(self._execute)

    def _execute(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        # BEGIN IMMEDIATE takes the write lock up front, so another process sharing the file
        # cannot interleave between this statement's read and its write.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            rows = self._db.execute(sql, tuple(params)).fetchall()
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return rows

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        def locked() -> T:
            with self._lock:
                return fn(*args)

        return await asyncio.to_thread(locked)

    async def reserve(
        self, account: str, day: str, micro_usd: int, limit: int, reservation: str | None = None
    ) -> Reservation:
        return await self._run(self._ledger.reserve, account, day, micro_usd, limit, reservation)

    async def refund(self, account: str, day: str, micro_usd: int) -> None:
        await self._run(self._ledger.refund, account, day, micro_usd)

    async def release(self, account: str, reservation: str) -> None:
        await self._run(self._ledger.release, account, reservation)

    async def usage(self, account: str, day: str) -> Usage:
        return await self._run(self._ledger.usage, account, day)

    async def history(self, account: str, first: str, last: str) -> list[DaySpend]:
        return await self._run(self._ledger.history, account, first, last)

    def close(self) -> None:
        self._db.close()
