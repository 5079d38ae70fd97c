"""The daily spend ledger: exact under concurrency, in one SQL statement.

``reserve`` is a single upsert whose ``WHERE`` refuses the increment that would cross the
budget, so two concurrent reservations can never both pass the check. The same SQL runs in
a Durable Object's SQLite storage on Workers (one object per key, so one writer) and in a
local SQLite file. Amounts are integer micro-dollars: no float drift at the boundary.
Pydantic-free: the Durable Object imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

UNLIMITED = 2**62

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spend ("
    " account TEXT NOT NULL, day TEXT NOT NULL,"
    " micro_usd INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, day))"
)
RESERVE = (
    "INSERT INTO spend (account, day, micro_usd, requests) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (account, day) DO UPDATE SET"
    " micro_usd = micro_usd + excluded.micro_usd, requests = requests + 1"
    " WHERE spend.micro_usd + excluded.micro_usd <= ? "
    "RETURNING micro_usd, requests"
)
REFUND = (
    "UPDATE spend SET micro_usd = MAX(0, micro_usd - ?), requests = MAX(0, requests - 1)"
    " WHERE account = ? AND day = ?"
)
USAGE = "SELECT micro_usd, requests FROM spend WHERE account = ? AND day = ?"

Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


def to_micro(usd: float) -> int:
    return round(usd * 1_000_000)


@dataclass(frozen=True)
class Usage:
    micro_usd: int
    requests: int


@dataclass(frozen=True)
class Reservation:
    accepted: bool
    usage: Usage  # after the reservation when accepted; as it stands when refused


class Ledger:
    """The ledger's logic over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(self, execute: Exec) -> None:
        self._exec = execute
        self._exec(SCHEMA, ())

    def usage(self, account: str, day: str) -> Usage:
        rows = self._exec(USAGE, (account, day))
        return Usage(int(rows[0][0]), int(rows[0][1])) if rows else Usage(0, 0)

    def reserve(self, account: str, day: str, micro_usd: int, limit: int) -> Reservation:
        if micro_usd > limit:
            return Reservation(False, self.usage(account, day))
        rows = self._exec(RESERVE, (account, day, micro_usd, limit))
        if not rows:
            return Reservation(False, self.usage(account, day))
        return Reservation(True, Usage(int(rows[0][0]), int(rows[0][1])))

    def refund(self, account: str, day: str, micro_usd: int) -> Usage:
        self._exec(REFUND, (micro_usd, account, day))
        return self.usage(account, day)


class BudgetLedger(Protocol):
    """The async port the gateway uses; one implementation per runtime."""

    async def reserve(self, account: str, day: str, micro_usd: int, limit: int) -> Reservation: ...

    async def refund(self, account: str, day: str, micro_usd: int) -> None: ...

    async def usage(self, account: str, day: str) -> Usage: ...
