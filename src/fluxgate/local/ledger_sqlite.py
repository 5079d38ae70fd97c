"""The ledger on a local SQLite file: transactional across threads and processes.

Each ledger operation runs in one ``BEGIN IMMEDIATE`` transaction, as a Durable Object's
method commits its statements together: a process killed between a hold and its charge (or
a refund and the hold it deletes) leaves neither, never one without the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..access.ledger import UNLIMITED, DaySpend, Ledger, Reservation, Usage, UserSpend, WindowCount
from .sqlite import TransactionalFile


class SqliteLedger:
    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._file = TransactionalFile(path)
        self._ledger = Ledger(self._file.execute, clock)
        self._run = self._file.run

    async def reserve(
        self,
        account: str,
        day: str,
        micro_usd: int,
        limit: int,
        reservation: str | None = None,
        lease_seconds: float | None = None,
        user: str | None = None,
        user_limit: int = UNLIMITED,
    ) -> Reservation:
        return await self._run(
            self._ledger.reserve,
            account,
            day,
            micro_usd,
            limit,
            reservation,
            lease_seconds,
            user,
            user_limit,
        )

    async def refund(self, account: str, day: str, micro_usd: int) -> None:
        await self._run(self._ledger.refund, account, day, micro_usd)

    async def release(self, account: str, reservation: str) -> None:
        await self._run(self._ledger.release, account, reservation)

    async def settle(self, account: str, hold: str) -> bool:
        return await self._run(self._ledger.settle, account, hold)

    async def usage(self, account: str, day: str, user: str | None = None) -> Usage:
        return await self._run(self._ledger.usage, account, day, user)

    async def history(
        self, account: str, first: str, last: str, user: str | None = None
    ) -> list[DaySpend]:
        return await self._run(self._ledger.history, account, first, last, user)

    async def top_users(self, account: str, first: str, last: str, limit: int) -> list[UserSpend]:
        return await self._run(self._ledger.top_users, account, first, last, limit)

    async def count(self, account: str, user: str, limit: int, period: int) -> WindowCount:
        return await self._run(self._ledger.count, account, user, limit, period)

    async def window(self, account: str, user: str, period: int) -> WindowCount:
        return await self._run(self._ledger.window, account, user, period)

    def close(self) -> None:
        self._file.close()
