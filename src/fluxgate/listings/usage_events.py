"""Usage events: one record per generation served, for charts (not for money).

Money stays with the ledger (:mod:`fluxgate.access.ledger`): exact, integer micro-dollars, one
writer per key. A usage event is the other view of the same traffic: who generated what,
how big, hit or miss, how long it took, what it cost. On Workers the events go to **Workers
Analytics Engine** (``edge/bindings/analytics_engine.py``: one data point per event,
sampled by the service at high volume, kept three months); locally to a SQLite table in
the data directory (``local/usage_sqlite.py``).

Which generations emit one: every generation the gateway *serves*, synchronous or async
(the job's run), from the model (``MISS``, ``BYPASS``) or from the cache (``HIT``, charged
0), including a coalesced follower and an async submission answered from the cache at once.
A refused or failed request emits none (the audit log has those).

An event is best effort: :class:`UsageRecorder` never lets a failure to record one reach the
request, whose answer is already decided. Pydantic-free: the Worker's adapter imports it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..access.auth import Principal
from ..access.ledger import to_micro
from ..store.records import GenerationRecord

log = logging.getLogger("fluxgate.usage_events")

# The layout of an Analytics Engine data point: blobN / doubleN in the SQL API are these,
# in this order (1-based). Append only: reordering would change the meaning of stored data.
BLOBS = ("key_id", "end_user", "model", "kind", "cache", "generation_id")
DOUBLES = (
    "charged_usd",
    "estimated_usd",
    "width",
    "height",
    "steps",
    "reference_images",
    "duration_ms",
)


@dataclass(frozen=True)
class UsageEvent:
    """One generation served. ``kind``: ``sync`` or ``async`` (a job's run, or an async
    submission answered from the cache); ``cache``: ``HIT``, ``MISS`` or ``BYPASS``."""

    time: float  # the gateway's clock (Analytics Engine stamps its own on write)
    key_id: str
    end_user: str | None  # a client token's subject, or the request's ``user``
    model: str
    kind: str
    cache: str
    generation_id: str
    width: int
    height: int
    steps: int
    reference_images: int
    charged_micro_usd: int  # 0 on a hit
    estimated_micro_usd: int  # what the model call costs (or would have) at list price
    duration_ms: float  # the gateway serving it: cache, model, storage (not auth, parsing)

    # In USD, as the data point and the local table carry them: made with the event, so
    # that a runtime's adapter reads plain values (it never calls back in here).
    charged_usd: float = field(init=False)
    estimated_usd: float = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "charged_usd", self.charged_micro_usd / 1e6)
        object.__setattr__(self, "estimated_usd", self.estimated_micro_usd / 1e6)


class UsageEvents(Protocol):
    """Where usage events go: Analytics Engine on Workers, SQLite locally."""

    async def record(self, event: UsageEvent) -> None: ...


class UsageRecorder:
    """Builds the event of a generation served and hands it to the port, never failing."""

    def __init__(self, events: UsageEvents | None, clock: Callable[[], float] = time.time) -> None:
        self._events = events
        self._clock = clock

    async def served(
        self,
        principal: Principal,
        record: GenerationRecord,
        cache: str,
        *,
        queued: bool,
        started: float,
    ) -> None:
        """``record`` was served to ``principal`` (``cache``: how), by a job's run or an async
        submission when ``queued``; ``started`` is ``time.perf_counter()`` at the start."""
        if self._events is None:
            return
        try:
            estimated = to_micro(record.cost().usd)
            event = UsageEvent(
                time=self._clock(),
                key_id=principal.key.id,
                end_user=principal.subject,
                model=record.model,
                kind="async" if queued else "sync",
                cache=cache,
                generation_id=record.id,
                width=record.width,
                height=record.height,
                steps=record.steps,
                reference_images=len(record.reference_images),
                charged_micro_usd=estimated if record.charged and cache != "HIT" else 0,
                estimated_micro_usd=estimated,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
            )
            await self._events.record(event)
        except Exception as exc:  # the answer is decided: an event is never worth failing it
            log.warning("usage event not recorded: %s: %s", type(exc).__name__, exc)
