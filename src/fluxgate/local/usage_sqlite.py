"""Usage events on the local runtime: a SQLite table in the data directory.

The local peer of the Analytics Engine dataset: one row per event, with the event's fields
as columns (the names of :data:`~fluxgate.listings.usage_events.BLOBS` and
:data:`~fluxgate.listings.usage_events.DOUBLES`, plus the exact micro-dollar amounts and the time).
Like the service, it keeps three months (:data:`RETENTION_DAYS`), aged out every
:data:`PRUNE_EVERY` writes. Like ``writeDataPoint``, recording returns at once: one writer
thread inserts the events in order, so a request (a cache hit above all) never waits on
disk; :meth:`SqliteUsageEvents.flush` waits for what is queued (tests, shutdown).

    sqlite3 .fluxgate/usage_events.sqlite3 \\
      "SELECT key_id, date(time, 'unixepoch') AS day, SUM(charged_usd), COUNT(*)
       FROM usage_events GROUP BY 1, 2 ORDER BY 2"
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from ..listings.usage_events import UsageEvent
from .sqlite import connect

RETENTION_DAYS = 92
PRUNE_EVERY = 1000

COLUMNS = (
    "time",
    "key_id",
    "end_user",
    "model",
    "kind",
    "cache",
    "generation_id",
    "width",
    "height",
    "steps",
    "reference_images",
    "charged_usd",
    "estimated_usd",
    "charged_micro_usd",
    "estimated_micro_usd",
    "duration_ms",
)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage_events ("
    " time REAL NOT NULL, key_id TEXT NOT NULL, end_user TEXT, model TEXT NOT NULL,"
    " kind TEXT NOT NULL, cache TEXT NOT NULL, generation_id TEXT NOT NULL,"
    " width INTEGER NOT NULL, height INTEGER NOT NULL, steps INTEGER NOT NULL,"
    " reference_images INTEGER NOT NULL, charged_usd REAL NOT NULL,"
    " estimated_usd REAL NOT NULL, charged_micro_usd INTEGER NOT NULL,"
    " estimated_micro_usd INTEGER NOT NULL, duration_ms REAL NOT NULL)"
)
_INDEX = "CREATE INDEX IF NOT EXISTS usage_events_time ON usage_events (time)"
# Built from the constant column names above, never from input.
_INSERT = "INSERT INTO usage_events ({}) VALUES ({})".format(  # noqa: S608
    ", ".join(COLUMNS), ", ".join("?" * len(COLUMNS))
)
_PRUNE = "DELETE FROM usage_events WHERE time < ?"


log = logging.getLogger("fluxgate.usage_events")


class SqliteUsageEvents:
    def __init__(self, path: Path | str) -> None:
        self._db = connect(path)
        self._db.execute(_SCHEMA)
        self._db.execute(_INDEX)
        self._writes = 0
        self._queue: queue.Queue[UsageEvent | None] = queue.Queue()
        self._closed = False
        self._writer = threading.Thread(target=self._write_all, name="usage-events", daemon=True)
        self._writer.start()

    def _write_all(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._insert(event)
            except Exception as exc:  # an event is never worth more than a log line
                log.warning("usage event not written: %s", type(exc).__name__)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _insert(self, event: UsageEvent) -> None:
        self._db.execute(_INSERT, tuple(getattr(event, name) for name in COLUMNS))
        self._writes += 1
        if self._writes % PRUNE_EVERY == 0:
            self._db.execute(_PRUNE, (event.time - RETENTION_DAYS * 86400,))

    async def record(self, event: UsageEvent) -> None:
        if self._closed:
            raise RuntimeError("the usage event store is closed")
        self._queue.put_nowait(event)

    def flush(self) -> None:
        """Wait until every event recorded so far is written."""
        self._queue.join()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._writer.join()
            self._db.close()
