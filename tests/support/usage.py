"""The usage events a runtime recorded, as a test reads them back.

:class:`UsageEventsDouble` is what a test reads: every event, in the names of
``fluxgate.listings.usage_events``'s layout and with Analytics Engine's types, and a way to
make every later write fail. Only the local runtime has it (:class:`LocalUsageEvents`, its
SQLite table): Miniflare's Analytics Engine dataset keeps no data points, so a test that
asks for ``usage_events`` runs locally (``runtimes("local")``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any, Protocol

import pytest

from fluxgate.listings.usage_events import BLOBS, DOUBLES
from fluxgate.local.usage_sqlite import SqliteUsageEvents


class UsageEventsDouble(Protocol):
    def events(self) -> list[dict[str, Any]]:
        """Every event recorded, in order (see :func:`usage_event`)."""
        ...

    def fail(self) -> None:
        """Every later write fails."""
        ...


def usage_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One usage event: the names of ``fluxgate.listings.usage_events``'s layout, blobs as text
    (``""`` for none), doubles as floats (as Analytics Engine would give them back)."""
    blobs = {name: "" if fields[name] is None else str(fields[name]) for name in BLOBS}
    return {**blobs, **{name: float(fields[name]) for name in DOUBLES}}


class LocalUsageEvents:
    """The local usage-event table, read from its SQLite file."""

    def __init__(self, path: Path, store: SqliteUsageEvents) -> None:
        self._path = path
        self._store = store

    def events(self) -> list[dict[str, Any]]:
        self._store.flush()  # recording returns before the writer thread has written
        with closing(sqlite3.connect(self._path)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM usage_events ORDER BY rowid").fetchall()
        return [usage_event(dict(row)) for row in rows]

    def fail(self) -> None:
        """Every later write fails (the store is closed under the gateway)."""
        self._store.close()


@pytest.fixture
def usage_event_store(tmp_path: Path) -> Iterator[SqliteUsageEvents]:
    """The local runtime's usage-event store, as the gateway gets it (white-box)."""
    store = SqliteUsageEvents(tmp_path / "usage_events.sqlite3")
    yield store
    store.close()


@pytest.fixture
def usage_events(usage_event_store: SqliteUsageEvents, tmp_path: Path) -> UsageEventsDouble:
    """The usage events the local runtime recorded (``events()``: one dict per event, the
    fields of ``fluxgate.listings.usage_events``), and ``fail()``: every later write fails."""
    return LocalUsageEvents(tmp_path / "usage_events.sqlite3", usage_event_store)
