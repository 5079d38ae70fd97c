"""Daily budgets on Workers: one Durable Object per key, SQLite inside.

KV cannot count money (eventually consistent, one write per second per key). A Durable
Object is a single writer: every reservation for a key goes to the same object, which runs
the ledger's single-statement upsert on its own SQLite storage. ``BudgetLedgerObject`` is
the object (exported by the Worker entry); ``WorkersLedger`` is the client the gateway uses.
"""

from __future__ import annotations

from typing import Any

from workers import DurableObject

from ...access.ledger import DaySpend, Ledger, Reservation, Usage
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
    ) -> list[Any]:
        """``reservation``: a job's id or a request's hold ("" for none, and a lease of 0
        for none: RPC carries no Python ``None``). The statements of one call commit
        together (no ``await`` between them)."""
        result = self._ledger.reserve(
            account,
            day,
            int(micro_usd),
            int(limit),
            str(reservation or "") or None,
            float(lease_seconds) or None,
        )
        return [result.accepted, result.usage.micro_usd, result.usage.requests]

    async def release(self, account: str, reservation: str) -> None:
        self._ledger.release(account, str(reservation))

    async def settle(self, account: str, hold: str) -> bool:
        return self._ledger.settle(account, str(hold))

    async def refund(self, account: str, day: str, micro_usd: int) -> list[int]:
        usage = self._ledger.refund(account, day, int(micro_usd))
        return [usage.micro_usd, usage.requests]

    async def usage(self, account: str, day: str) -> list[int]:
        usage = self._ledger.usage(account, day)
        return [usage.micro_usd, usage.requests]

    async def history(self, account: str, first: str, last: str) -> list[list[Any]]:
        """``[[day, micro_usd, requests], ...]``: the days with spend, in order."""
        return [
            [d.day, d.micro_usd, d.requests] for d in self._ledger.history(account, first, last)
        ]


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
    ) -> Reservation:
        accepted, spent, requests = py_value(
            await self._stub(account).reserve(
                account, day, micro_usd, limit, reservation or "", lease_seconds or 0
            )
        )
        return Reservation(bool(accepted), Usage(int(spent), int(requests)))

    async def release(self, account: str, reservation: str) -> None:
        await self._stub(account).release(account, reservation)

    async def settle(self, account: str, hold: str) -> bool:
        return bool(await self._stub(account).settle(account, hold))

    async def refund(self, account: str, day: str, micro_usd: int) -> None:
        await self._stub(account).refund(account, day, micro_usd)

    async def usage(self, account: str, day: str) -> Usage:
        spent, requests = py_value(await self._stub(account).usage(account, day))
        return Usage(int(spent), int(requests))

    async def history(self, account: str, first: str, last: str) -> list[DaySpend]:
        rows = py_value(await self._stub(account).history(account, first, last))
        return [DaySpend(str(day), int(spent), int(requests)) for day, spent, requests in rows]
