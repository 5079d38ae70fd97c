"""Spend over a range of UTC days: the ranges the API accepts and the rows it answers.

``GET /v1/usage?from=&to=`` (a key's own, up to :data:`MAX_KEY_DAYS`) and
``GET /v1/admin/usage`` (every key, up to :data:`MAX_ADMIN_DAYS`) read the ledger's
``spend`` rows back (:meth:`~fluxgate.access.ledger.BudgetLedger.history`), which the ledger keeps
for :data:`~fluxgate.access.ledger.RETENTION_DAYS`. Days are UTC, like the budget's, and a range
may not reach past today (the server's UTC day): the future has no spend to report, and a
client that asks for it has its dates wrong. Every day of a range gets a row, zeros included,
so a chart needs no gap filling. Money is converted from micro-dollars here, at the edge.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from ..access.auth import invalid_field
from ..access.ledger import DaySpend

MAX_KEY_DAYS = 366
MAX_ADMIN_DAYS = 92

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(text: str, param: str) -> date:
    """A ``YYYY-MM-DD`` day, or ``400 invalid_request`` naming ``param``."""
    if len(text) == 10 and _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    raise invalid_field(param, "must be a day as YYYY-MM-DD (UTC)")


def day_range(
    first: str | None,
    last: str | None,
    *,
    today: date,
    max_days: int,
    day: str | None = None,
) -> tuple[date, date]:
    """The inclusive range a request asks for: ``day`` alone, or ``from`` and ``to``;
    ``from`` alone runs to today, ``to`` alone is that one day, nothing is today."""
    if day is not None:
        if first is not None or last is not None:
            raise invalid_field("day", "give either day, or from and to")
        first = last = day
    start = None if first is None else parse_day(first, "day" if day else "from")
    end = None if last is None else parse_day(last, "day" if day else "to")
    if start is None:
        start = end or today
    if end is None:
        end = today if first is not None else start
    for param, value in (("day" if day else "to", end), ("day" if day else "from", start)):
        if value > today:
            raise invalid_field(param, f"must not be after today ({today.isoformat()}, UTC)")
    if start > end:
        raise invalid_field("from", "must not be after to")
    span = (end - start).days + 1
    if span > max_days:
        raise invalid_field("from", f"the range is {span} days; at most {max_days} are allowed")
    return start, end


def usd(micro_usd: int) -> float:
    return round(micro_usd / 1e6, 6)


def day_rows(first: date, last: date, stored: list[DaySpend]) -> list[dict[str, Any]]:
    """One row per day from ``first`` to ``last``, ascending; days without spend are 0."""
    found = {row.day: row for row in stored}
    rows = []
    for offset in range((last - first).days + 1):
        day = (first + timedelta(days=offset)).isoformat()
        row = found.get(day)
        rows.append(
            {
                "day": day,
                "spent_usd": usd(row.micro_usd) if row else 0.0,
                "requests": row.requests if row else 0,
            }
        )
    return rows
