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

End users. A key's end users (client tokens, OpenAI's ``user``) may each have a quota of
their own inside the key's: a daily budget and a rate limit. Both live in the key's ledger,
next to the key's own spend, so that one call decides both exactly:

- ``reserve(..., user=, user_limit=)`` charges the end user's ``user_spend`` row and the
  key's ``spend`` row in the same transaction (the user's first, so a refusal names the
  tighter quota), and records whose charge a hold or a job's reservation was
  (``charge_users``), so that its release, or its lapse, refunds the end user too;
- ``count(account, user, limit, period)`` counts one request in the end user's current fixed
  window (``user_windows``, one row per end user), refusing past ``limit``.

On Workers the ledger is one Durable Object per key, a single writer: neither can be
overrun by concurrent requests, in one location or many (the Rate Limiting binding counts
per location, approximately, and only in windows of 10 or 60 s).
"""

from __future__ import annotations

import math
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
LAPSED_HOLDS = (
    "DELETE FROM holds WHERE account = ? AND lease_until <= ? RETURNING id, day, micro_usd"
)

# End users' spend, per key, end user and UTC day; pruned as the key's (RETENTION_DAYS).
USER_SPEND_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS user_spend ("
    " account TEXT NOT NULL, end_user TEXT NOT NULL, day TEXT NOT NULL,"
    " micro_usd INTEGER NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY (account, end_user, day))"
)
USER_SPEND_INDEX = "CREATE INDEX IF NOT EXISTS user_spend_by_day ON user_spend (account, day)"
USER_RESERVE = (
    "INSERT INTO user_spend (account, end_user, day, micro_usd, requests) VALUES (?, ?, ?, ?, 1) "
    "ON CONFLICT (account, end_user, day) DO UPDATE SET"
    " micro_usd = micro_usd + excluded.micro_usd, requests = requests + 1"
    " WHERE user_spend.micro_usd + excluded.micro_usd <= ? "
    "RETURNING micro_usd, requests"
)
USER_REFUND = (
    "UPDATE user_spend SET micro_usd = MAX(0, micro_usd - ?), requests = MAX(0, requests - 1)"
    " WHERE account = ? AND end_user = ? AND day = ?"
)
USER_USAGE = (
    "SELECT micro_usd, requests FROM user_spend WHERE account = ? AND end_user = ? AND day = ?"
)
USER_HISTORY = (
    "SELECT day, micro_usd, requests FROM user_spend"
    " WHERE account = ? AND end_user = ? AND day BETWEEN ? AND ? ORDER BY day"
)
TOP_USERS = (
    "SELECT end_user, SUM(micro_usd) AS spent, SUM(requests) FROM user_spend"
    " WHERE account = ? AND day BETWEEN ? AND ? GROUP BY end_user"
    " HAVING SUM(requests) > 0 ORDER BY spent DESC, end_user LIMIT ?"
)
PRUNE_USER_SPEND = "DELETE FROM user_spend WHERE account = ? AND day < ?"
# Whose a hold's or a job reservation's charge was, when it was an end user's too.
CHARGE_USERS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS charge_users ("
    " id TEXT PRIMARY KEY, account TEXT NOT NULL, end_user TEXT NOT NULL, day TEXT NOT NULL)"
)
CHARGE_USER = "INSERT OR REPLACE INTO charge_users (id, account, end_user, day) VALUES (?, ?, ?, ?)"
UNCHARGE_USER = "DELETE FROM charge_users WHERE id = ? AND account = ? RETURNING end_user, day"
PRUNE_CHARGE_USERS = "DELETE FROM charge_users WHERE day < ?"
# End users' rate windows: one row each, the current fixed window and its count.
USER_WINDOWS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS user_windows ("
    " account TEXT NOT NULL, end_user TEXT NOT NULL, window_start INTEGER NOT NULL,"
    " count INTEGER NOT NULL, PRIMARY KEY (account, end_user))"
)
USER_COUNT = (
    "INSERT INTO user_windows (account, end_user, window_start, count) VALUES (?, ?, ?, 1) "
    "ON CONFLICT (account, end_user) DO UPDATE SET"
    " count = CASE WHEN user_windows.window_start = excluded.window_start"
    " THEN count + 1 ELSE 1 END,"
    " window_start = excluded.window_start"
    " WHERE user_windows.window_start <> excluded.window_start OR user_windows.count < ? "
    "RETURNING count"
)
USER_WINDOW = "SELECT window_start, count FROM user_windows WHERE account = ? AND end_user = ?"

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
class UserSpend:
    """One end user's spend over a range of days (the top users of a key)."""

    user: str
    micro_usd: int
    requests: int


@dataclass(frozen=True)
class Reservation:
    accepted: bool
    usage: Usage  # the key's: after the reservation when accepted; as it stands when refused
    refused_by: str | None = None  # "key" or "user": whose budget refused it
    user_usage: Usage | None = None  # the end user's, when the charge was an end user's


@dataclass(frozen=True)
class WindowCount:
    """One end user's request counted (or refused) in its rate window."""

    allowed: bool
    count: int  # in the window, this request included when allowed
    reset: int  # seconds until the window ends


class Ledger:
    """The ledger's logic over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(self, execute: Exec, clock: Callable[[], float] = time.time) -> None:
        self._exec = execute
        self._clock = clock
        for statement in (
            SCHEMA,
            RESERVATIONS_SCHEMA,
            HOLDS_SCHEMA,
            HOLDS_INDEX,
            USER_SPEND_SCHEMA,
            USER_SPEND_INDEX,
            CHARGE_USERS_SCHEMA,
            USER_WINDOWS_SCHEMA,
        ):
            self._exec(statement, ())

    def usage(self, account: str, day: str, user: str | None = None) -> Usage:
        """The account's spend on ``day`` (or one end user's of it), after refunding its
        lapsed holds."""
        self._lapse(account)
        return self._usage(account, day) if user is None else self._user_usage(account, user, day)

    def _usage(self, account: str, day: str) -> Usage:
        rows = self._exec(USAGE, (account, day))
        return Usage(int(rows[0][0]), int(rows[0][1])) if rows else Usage(0, 0)

    def _user_usage(self, account: str, user: str, day: str) -> Usage:
        rows = self._exec(USER_USAGE, (account, user, day))
        return Usage(int(rows[0][0]), int(rows[0][1])) if rows else Usage(0, 0)

    def history(
        self, account: str, first: str, last: str, user: str | None = None
    ) -> list[DaySpend]:
        """The days from ``first`` to ``last`` (inclusive, ``YYYY-MM-DD``) that have a row,
        in order, the account's or one end user's of it, after refunding lapsed holds."""
        self._lapse(account)
        if user is None:
            rows = self._exec(HISTORY, (account, first, last))
        else:
            rows = self._exec(USER_HISTORY, (account, user, first, last))
        return [DaySpend(str(day), int(micro), int(requests)) for day, micro, requests in rows]

    def top_users(self, account: str, first: str, last: str, limit: int) -> list[UserSpend]:
        """The account's ``limit`` end users who spent most from ``first`` to ``last``."""
        self._lapse(account)
        rows = self._exec(TOP_USERS, (account, first, last, limit))
        return [UserSpend(str(user), int(micro), int(requests)) for user, micro, requests in rows]

    def count(self, account: str, user: str, limit: int, period: int) -> WindowCount:
        """Count one request of ``user`` in its current fixed window of ``period`` seconds,
        unless ``limit`` are already counted there (one statement: exact)."""
        now = self._clock()
        window = int(now // period) * period
        reset = max(1, math.ceil(window + period - now))
        rows = self._exec(USER_COUNT, (account, user, window, limit))
        if rows:
            return WindowCount(True, int(rows[0][0]), reset)
        return WindowCount(False, limit, reset)

    def window(self, account: str, user: str, period: int) -> WindowCount:
        """How many of ``user``'s requests its current window has counted (nothing counted)."""
        now = self._clock()
        window = int(now // period) * period
        rows = self._exec(USER_WINDOW, (account, user))
        count = int(rows[0][1]) if rows and int(rows[0][0]) == window else 0
        return WindowCount(True, count, max(1, math.ceil(window + period - now)))

    def reserve(
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
        """Charge ``micro_usd`` unless it crosses ``limit`` (or, for an end user's request,
        ``user_limit`` of that end user's own spend). ``reservation``: a job's id (kept until
        released) or, with ``lease_seconds``, a request's hold."""
        payer = _Payer(account, day, micro_usd, limit, user, user_limit)
        if reservation and lease_seconds is not None:
            return self._hold(payer, reservation, lease_seconds)
        if reservation and not self._exec(HOLD, (reservation, account, day, micro_usd)):
            return self._made_before(payer)
        result = self._charge(payer, reservation)
        if reservation and not result.accepted:
            self._exec(UNHOLD, (reservation, account))
        elif reservation:
            self._prune(day)
        return result

    def _hold(self, payer: _Payer, hold: str, lease_seconds: float) -> Reservation:
        self._lapse(payer.account)
        until = self._clock() + lease_seconds
        if self._exec(RENEW_HOLD, (until, hold, payer.account)):
            return self._made_before(payer)  # taken over: charged once
        result = self._charge(payer, hold)
        if result.accepted:
            self._exec(TAKE_HOLD, (hold, payer.account, payer.day, payer.micro_usd, until))
        return result

    def _made_before(self, payer: _Payer) -> Reservation:
        """A reservation or hold that already stands: charged once, nothing more now."""
        user_usage = (
            None if payer.user is None else self._user_usage(payer.account, payer.user, payer.day)
        )
        return Reservation(True, self._usage(payer.account, payer.day), None, user_usage)

    def _lapse(self, account: str) -> None:
        """Refund the holds of requests that died before settling (their lease ran out)."""
        for hold, day, micro_usd in self._exec(LAPSED_HOLDS, (account, self._clock())):
            self._refund(account, str(day), int(micro_usd), str(hold))

    def settle(self, account: str, hold: str) -> bool:
        """The request kept its image: its hold's charge stands. False when the hold had
        already lapsed (and was refunded: the request outlived its lease)."""
        if not self._exec(SETTLE_HOLD, (hold, account)):
            return False
        self._exec(UNCHARGE_USER, (hold, account))
        return True

    def _charge(self, payer: _Payer, reservation: str | None) -> Reservation:
        """The end user's charge first (a refusal names the tighter quota), then the key's;
        the end user's is taken back when the key's is refused. One transaction."""
        account, day, micro_usd = payer.account, payer.day, payer.micro_usd
        user_usage: Usage | None = None
        if payer.user is not None:
            rows = (
                self._exec(USER_RESERVE, (account, payer.user, day, micro_usd, payer.user_limit))
                if micro_usd <= payer.user_limit
                else []
            )
            if not rows:
                refused = self._user_usage(account, payer.user, day)
                return Reservation(False, self._usage(account, day), "user", refused)
            user_usage = Usage(int(rows[0][0]), int(rows[0][1]))
        rows = (
            self._exec(RESERVE, (account, day, micro_usd, payer.limit))
            if micro_usd <= payer.limit
            else []
        )
        if not rows:
            if payer.user is not None:
                self._exec(USER_REFUND, (micro_usd, account, payer.user, day))
                user_usage = self._user_usage(account, payer.user, day)
            return Reservation(False, self._usage(account, day), "key", user_usage)
        usage = Usage(int(rows[0][0]), int(rows[0][1]))
        if payer.user is not None and reservation:
            self._exec(CHARGE_USER, (reservation, account, payer.user, day))
        if usage.requests == 1:  # the day's first reservation: age out the oldest days
            self._prune_spend(account, day)
        return Reservation(True, usage, None, user_usage)

    def _prune_spend(self, account: str, day: str) -> None:
        cutoff = _days_before(day, RETENTION_DAYS)
        if cutoff is not None:
            self._exec(PRUNE_SPEND, (account, cutoff))
            self._exec(PRUNE_USER_SPEND, (account, cutoff))

    def release(self, account: str, reservation: str) -> None:
        """Refund a recorded reservation or a hold, once (the record goes with the refund),
        to the key and, when it was an end user's charge, to the end user."""
        rows = self._exec(UNHOLD, (reservation, account)) or self._exec(
            DROP_HOLD, (reservation, account)
        )
        if rows:
            day, micro_usd = rows[0]
            self._refund(account, str(day), int(micro_usd), reservation)

    def _refund(self, account: str, day: str, micro_usd: int, charge: str) -> None:
        self._exec(REFUND, (micro_usd, account, day))
        for user, user_day in self._exec(UNCHARGE_USER, (charge, account)):
            self._exec(USER_REFUND, (micro_usd, account, str(user), str(user_day)))

    def _prune(self, day: str) -> None:
        cutoff = _days_before(day, RESERVATION_DAYS)
        if cutoff is not None:
            self._exec(PRUNE, (cutoff,))
            self._exec(PRUNE_CHARGE_USERS, (cutoff,))

    def refund(self, account: str, day: str, micro_usd: int) -> Usage:
        self._exec(REFUND, (micro_usd, account, day))
        return self._usage(account, day)


@dataclass(frozen=True)
class _Payer:
    """Who a charge is made to, and the limits it must stay within."""

    account: str
    day: str
    micro_usd: int
    limit: int
    user: str | None
    user_limit: int


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
        user: str | None = None,
        user_limit: int = UNLIMITED,
    ) -> Reservation: ...

    async def refund(self, account: str, day: str, micro_usd: int) -> None: ...

    async def release(self, account: str, reservation: str) -> None: ...

    async def settle(self, account: str, hold: str) -> bool: ...

    async def usage(self, account: str, day: str, user: str | None = None) -> Usage: ...

    async def history(
        self, account: str, first: str, last: str, user: str | None = None
    ) -> list[DaySpend]: ...

    async def top_users(
        self, account: str, first: str, last: str, limit: int
    ) -> list[UserSpend]: ...

    async def count(self, account: str, user: str, limit: int, period: int) -> WindowCount: ...

    async def window(self, account: str, user: str, period: int) -> WindowCount: ...
