"""Daily budgets on Workers: one Durable Object per key, SQLite inside.

KV cannot count money (eventually consistent, one write per second per key). A Durable
Object is a single writer: every reservation for a key goes to the same object, which runs
the ledger's single-statement upsert on its own SQLite storage. ``BudgetLedgerObject`` is
the object (exported by the Worker entry); ``WorkersLedger`` is the client the gateway uses.
"""

from __future__ import annotations

from typing import Any

from workers import DurableObject

from ...access.ledger import UNLIMITED, DaySpend, Ledger, Reservation, Usage, UserSpend, WindowCount
from ..ffi import py_value, sql_executor, unwrap


class BudgetLedgerObject(DurableObject):
    """The Durable Object: RPC methods over :class:`~fluxgate.access.ledger.Ledger`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._ledger = Ledger(sql_executor(self.ctx.storage))

    async def reserve(
        self,
        account: str,
        day: str,
        micro_usd: int,
        limit: int,
        reservation: str = "",
        lease_seconds: float = 0,
        user: str = "",
        user_limit: int = UNLIMITED,
    ) -> list[Any]:
        """``reservation``: a job's id or a request's hold ("" for none, and a lease of 0
        for none; ``user`` "" for a key's own request: RPC carries no Python ``None``). The
        statements of one call commit together (no ``await`` between them)."""
        result = self._ledger.reserve(
            account,
            day,
            int(micro_usd),
            int(limit),
            str(reservation or "") or None,
            float(lease_seconds) or None,
            str(user or "") or None,
            int(user_limit),
        )
        spent = result.user_usage
        return [
            result.accepted,
            result.usage.micro_usd,
            result.usage.requests,
            result.refused_by or "",
            -1 if spent is None else spent.micro_usd,
            -1 if spent is None else spent.requests,
        ]

    async def release(self, account: str, reservation: str) -> None:
        self._ledger.release(account, str(reservation))

    async def settle(self, account: str, hold: str) -> bool:
        return self._ledger.settle(account, str(hold))

    async def refund(self, account: str, day: str, micro_usd: int) -> list[int]:
        usage = self._ledger.refund(account, day, int(micro_usd))
        return [usage.micro_usd, usage.requests]

    async def usage(self, account: str, day: str, user: str = "") -> list[int]:
        usage = self._ledger.usage(account, day, str(user or "") or None)
        return [usage.micro_usd, usage.requests]

    async def history(self, account: str, first: str, last: str, user: str = "") -> list[list[Any]]:
        """``[[day, micro_usd, requests], ...]``: the days with spend, in order."""
        rows = self._ledger.history(account, first, last, str(user or "") or None)
        return [[d.day, d.micro_usd, d.requests] for d in rows]

    async def top_users(self, account: str, first: str, last: str, limit: int) -> list[list[Any]]:
        """``[[end_user, micro_usd, requests], ...]``: who spent most, most first."""
        rows = self._ledger.top_users(account, first, last, int(limit))
        return [[u.user, u.micro_usd, u.requests] for u in rows]

    async def count(self, account: str, user: str, limit: int, period: int) -> list[Any]:
        counted = self._ledger.count(account, str(user), int(limit), int(period))
        return [counted.allowed, counted.count, counted.reset]

    async def window(self, account: str, user: str, period: int) -> list[Any]:
        counted = self._ledger.window(account, str(user), int(period))
        return [counted.allowed, counted.count, counted.reset]


class WorkersLedger:
    """The gateway's :class:`~fluxgate.access.ledger.BudgetLedger`, calling one object per key."""

    def __init__(self, namespace: Any) -> None:
        self._namespace = unwrap(namespace)

    def _stub(self, account: str) -> Any:
        return self._namespace.get(self._namespace.idFromName(account))

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
        accepted, spent, requests, refused_by, user_spent, user_requests = py_value(
            await self._stub(account).reserve(
                account,
                day,
                micro_usd,
                limit,
                reservation or "",
                lease_seconds or 0,
                user or "",
                user_limit,
            )
        )
        user_usage = None if user_spent < 0 else Usage(int(user_spent), int(user_requests))
        return Reservation(
            bool(accepted), Usage(int(spent), int(requests)), refused_by or None, user_usage
        )

    async def release(self, account: str, reservation: str) -> None:
        await self._stub(account).release(account, reservation)

    async def settle(self, account: str, hold: str) -> bool:
        return bool(await self._stub(account).settle(account, hold))

    async def refund(self, account: str, day: str, micro_usd: int) -> None:
        await self._stub(account).refund(account, day, micro_usd)

    async def usage(self, account: str, day: str, user: str | None = None) -> Usage:
        spent, requests = py_value(await self._stub(account).usage(account, day, user or ""))
        return Usage(int(spent), int(requests))

    async def history(
        self, account: str, first: str, last: str, user: str | None = None
    ) -> list[DaySpend]:
        rows = py_value(await self._stub(account).history(account, first, last, user or ""))
        return [DaySpend(str(day), int(spent), int(requests)) for day, spent, requests in rows]

    async def top_users(self, account: str, first: str, last: str, limit: int) -> list[UserSpend]:
        rows = py_value(await self._stub(account).top_users(account, first, last, limit))
        return [UserSpend(str(user), int(spent), int(requests)) for user, spent, requests in rows]

    async def count(self, account: str, user: str, limit: int, period: int) -> WindowCount:
        allowed, count, reset = py_value(
            await self._stub(account).count(account, user, limit, period)
        )
        return WindowCount(bool(allowed), int(count), int(reset))

    async def window(self, account: str, user: str, period: int) -> WindowCount:
        allowed, count, reset = py_value(await self._stub(account).window(account, user, period))
        return WindowCount(bool(allowed), int(count), int(reset))
