"""The daily spend ledger: exact under concurrency, in one SQL statement.

``reserve`` is a single upsert whose ``WHERE`` refuses the increment that would cross the
budget, so two concurrent reservations can never both pass the check. The same SQL runs in
a Durable Object's SQLite storage on Workers (one object per key, so one writer) and in a
local SQLite file. Amounts are integer micro-dollars: no float drift at the boundary.

A reservation may carry an id (an async job's): it is then recorded, and reserving the same
id again charges nothing, so a job re-run after its consumer crashed mid-generation is
charged once. ``release`` refunds such a reservation exactly once. Records are kept for
:data:`RESERVATION_DAYS` (longer than a queue keeps a message).

A synchronous request's reservation is a *hold* with a lease (``lease_seconds``): the request
settles it once its image is kept, or releases it when it fails. A request that
died in between (a crashed process or isolate, a cancelled request) can do neither, so a hold
whose lease has lapsed is refunded by the next call that reads or charges the account: no
crash leaves a charge without an image. Reserving a hold that stands *renews* it instead of
charging again: an ``Idempotency-Key`` retry of a request that died takes over its hold
(see :func:`fluxgate.service.controls.retry_hold`), so the retry is charged once in total.

History. The ``spend`` rows (one per account and UTC day) are what ``GET /v1/usage`` and
``GET /v1/admin/usage`` read back over a range of days (``history``: one ranged read on the
primary key). They are kept for :data:`RETENTION_DAYS`: the first reservation of an
account's day deletes that account's rows older than that, a range of the same index, so
pruning costs one indexed delete per account and day. Pydantic-free: the Durable Object
imports it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Protocol

# "No budget", as a limit in micro-USD: JavaScript's largest safe integer (about nine billion
# dollars a day). The limit is bound into workerd's SqlStorage, which takes only what a
# double holds exactly: the 2**62 this once was made every request of an unlimited tier a
# 500 on Workers.
UNLIMITED = 2**53 - 1

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
HISTORY = (
    "SELECT day, micro_usd, requests FROM spend"
    " WHERE account = ? AND day BETWEEN ? AND ? ORDER BY day"
)
# Longer than any range the API reads back (366 days), so a year is always complete.
RETENTION_DAYS = 400
PRUNE_SPEND = "DELETE FROM spend WHERE account = ? AND day < ?"

RESERVATION_DAYS = 30
RESERVATIONS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS reservations ("
    " id TEXT PRIMARY KEY, account TEXT NOT NULL, day TEXT NOT NULL,"
    " micro_usd INTEGER NOT NULL)"
)
HOLD = (
    "INSERT INTO reservations (id, account, day, micro_usd) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
UNHOLD = "DELETE FROM reservations WHERE id = ? AND account = ? RETURNING day, micro_usd"
PRUNE = "DELETE FROM reservations WHERE day < ?"

# Synchronous requests' holds (see the module docstring): refunded when their lease lapses.
HOLDS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS holds ("
    " id TEXT PRIMARY KEY, account TEXT NOT NULL, day TEXT NOT NULL,"
    " micro_usd INTEGER NOT NULL, lease_until REAL NOT NULL)"
)
HOLDS_INDEX = "CREATE INDEX IF NOT EXISTS holds_by_lease ON holds (account, lease_until)"
TAKE_HOLD = "INSERT INTO holds (id, account, day, micro_usd, lease_until) VALUES (?, ?, ?, ?, ?)"
RENEW_HOLD = "UPDATE holds SET lease_until = ? WHERE id = ? AND account = ? RETURNING day"
SETTLE_HOLD = "DELETE FROM holds WHERE id = ? AND account = ? RETURNING id"
DROP_HOLD = "DELETE FROM holds WHERE id = ? AND account = ? RETURNING day, micro_usd"
LAPSED_HOLDS = "DELETE FROM holds WHERE account = ? AND lease_until <= ? RETURNING day, micro_usd"

Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


def to_micro(usd: float) -> int:
    return round(usd * 1_000_000)


@dataclass(frozen=True)
class Usage:
    micro_usd: int
    requests: int


@dataclass(frozen=True)
class DaySpend:
    """One UTC day of an account's spend, as stored (days without spend have no row)."""

    day: str
    micro_usd: int
    requests: int


@dataclass(frozen=True)
class Reservation:
    accepted: bool
    usage: Usage  # after the reservation when accepted; as it stands when refused


class Ledger:
    """The ledger's logic over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(self, execute: Exec, clock: Callable[[], float] = time.time) -> None:
        self._exec = execute
        self._clock = clock
        for statement in (SCHEMA, RESERVATIONS_SCHEMA, HOLDS_SCHEMA, HOLDS_INDEX):
            self._exec(statement, ())

    def usage(self, account: str, day: str) -> Usage:
        """The account's spend on ``day``, after refunding its lapsed holds."""
        self._lapse(account)
        return self._usage(account, day)

    def _usage(self, account: str, day: str) -> Usage:
        rows = self._exec(USAGE, (account, day))
        return Usage(int(rows[0][0]), int(rows[0][1])) if rows else Usage(0, 0)

    def history(self, account: str, first: str, last: str) -> list[DaySpend]:
        """The days from ``first`` to ``last`` (inclusive, ``YYYY-MM-DD``) that have a row,
        in order, after refunding the account's lapsed holds."""
        self._lapse(account)
        rows = self._exec(HISTORY, (account, first, last))
        return [DaySpend(str(day), int(micro), int(requests)) for day, micro, requests in rows]

    def reserve(
        self,
        account: str,
        day: str,
        micro_usd: int,
        limit: int,
        reservation: str | None = None,
        lease_seconds: float | None = None,
    ) -> Reservation:
        """Charge ``micro_usd`` unless it crosses ``limit``. ``reservation``: a job's id
        (kept until released) or, with ``lease_seconds``, a request's hold."""
        if reservation and lease_seconds is not None:
            return self._hold(account, day, micro_usd, limit, reservation, lease_seconds)
        if reservation and not self._exec(HOLD, (reservation, account, day, micro_usd)):
            return Reservation(True, self._usage(account, day))  # made before: charged once
        result = self._charge(account, day, micro_usd, limit)
        if reservation and not result.accepted:
            self._exec(UNHOLD, (reservation, account))
        elif reservation:
            self._prune(day)
        return result

    def _hold(
        self, account: str, day: str, micro_usd: int, limit: int, hold: str, lease_seconds: float
    ) -> Reservation:
        self._lapse(account)
        until = self._clock() + lease_seconds
        if self._exec(RENEW_HOLD, (until, hold, account)):
            return Reservation(True, self._usage(account, day))  # taken over: charged once
        result = self._charge(account, day, micro_usd, limit)
        if result.accepted:
            self._exec(TAKE_HOLD, (hold, account, day, micro_usd, until))
        return result

    def _lapse(self, account: str) -> None:
        """Refund the holds of requests that died before settling (their lease ran out)."""
        for day, micro_usd in self._exec(LAPSED_HOLDS, (account, self._clock())):
            self._exec(REFUND, (int(micro_usd), account, str(day)))

    def settle(self, account: str, hold: str) -> bool:
        """The request kept its image: its hold's charge stands. False when the hold had
        already lapsed (and was refunded: the request outlived its lease)."""
        return bool(self._exec(SETTLE_HOLD, (hold, account)))

    def _charge(self, account: str, day: str, micro_usd: int, limit: int) -> Reservation:
        if micro_usd > limit:
            return Reservation(False, self._usage(account, day))
        rows = self._exec(RESERVE, (account, day, micro_usd, limit))
        if not rows:
            return Reservation(False, self._usage(account, day))
        usage = Usage(int(rows[0][0]), int(rows[0][1]))
        if usage.requests == 1:  # the day's first reservation: age out the oldest days
            self._prune_spend(account, day)
        return Reservation(True, usage)

    def _prune_spend(self, account: str, day: str) -> None:
        cutoff = _days_before(day, RETENTION_DAYS)
        if cutoff is not None:
            self._exec(PRUNE_SPEND, (account, cutoff))

    def release(self, account: str, reservation: str) -> None:
        """Refund a recorded reservation or a hold, once (the record goes with the refund)."""
        rows = self._exec(UNHOLD, (reservation, account)) or self._exec(
            DROP_HOLD, (reservation, account)
        )
        if rows:
            day, micro_usd = rows[0]
            self._exec(REFUND, (int(micro_usd), account, str(day)))

    def _prune(self, day: str) -> None:
        cutoff = _days_before(day, RESERVATION_DAYS)
        if cutoff is not None:
            self._exec(PRUNE, (cutoff,))

    def refund(self, account: str, day: str, micro_usd: int) -> Usage:
        self._exec(REFUND, (micro_usd, account, day))
        return self._usage(account, day)


def _days_before(day: str, days: int) -> str | None:
    """``day`` minus ``days``; ``None`` for a day that is not a calendar day (nothing to age
    out against)."""
    try:
        return (date.fromisoformat(day) - timedelta(days=days)).isoformat()
    except ValueError:
        return None


class BudgetLedger(Protocol):
    """The async port the gateway uses; one implementation per runtime."""

    async def reserve(
        self,
        account: str,
        day: str,
        micro_usd: int,
        limit: int,
        reservation: str | None = None,
        lease_seconds: float | None = None,
    ) -> Reservation: ...

    async def refund(self, account: str, day: str, micro_usd: int) -> None: ...

    async def release(self, account: str, reservation: str) -> None: ...

    async def settle(self, account: str, hold: str) -> bool: ...

    async def usage(self, account: str, day: str) -> Usage: ...

    async def history(self, account: str, first: str, last: str) -> list[DaySpend]: ...
