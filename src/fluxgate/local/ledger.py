"""The ledger on a local SQLite file: transactional across threads and processes.

Each ledger operation runs in one ``BEGIN IMMEDIATE`` transaction, as a Durable Object's
method commits its statements together: a process killed between a hold and its charge (or
a refund and the hold it deletes) leaves neither, never one without the other.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from ..ledger import DaySpend, Ledger, Reservation, Usage
from .sqlite import connect

T = TypeVar("T")


class SqliteLedger:
    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._db = connect(path)
        self._lock = threading.Lock()
        self._ledger = Ledger(self._execute, clock)

    def _execute(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        # BEGIN IMMEDIATE takes the write lock up front, so another process sharing the file
        # cannot interleave between an operation's reads and its writes.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = fn(*args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return result

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._transaction, fn, *args)

    async def reserve(
        self,
        account: str,
        day: str,
        micro_usd: int,
        limit: int,
        reservation: str | None = None,
        lease_seconds: float | None = None,
    ) -> Reservation:
        return await self._run(
            self._ledger.reserve, account, day, micro_usd, limit, reservation, lease_seconds
        )

    async def refund(self, account: str, day: str, micro_usd: int) -> None:
        await self._run(self._ledger.refund, account, day, micro_usd)

    async def release(self, account: str, reservation: str) -> None:
        await self._run(self._ledger.release, account, reservation)

    async def settle(self, account: str, hold: str) -> bool:
        return await self._run(self._ledger.settle, account, hold)

    async def usage(self, account: str, day: str) -> Usage:
        return await self._run(self._ledger.usage, account, day)

    async def history(self, account: str, first: str, last: str) -> list[DaySpend]:
        return await self._run(self._ledger.history, account, first, last)

    def close(self) -> None:
        self._db.close()
