"""The SQLite settings every local store shares."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def connect(path: Path | str) -> sqlite3.Connection:
    """Autocommit, usable from worker threads, WAL with NORMAL sync: commits are atomic and
    the file never corrupts; a power cut may lose the last commits (acceptable for a local
    stand-in of services that are themselves eventually consistent)."""
    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    return db


class SqliteFile:
    """A connection plus the lock that serialises its use across threads."""

    def __init__(self, path: Path | str) -> None:
        self.db = connect(path)
        self.lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        with self.lock:
            return self.db.execute(sql, tuple(params)).fetchall()

    def close(self) -> None:
        self.db.close()


class TransactionalFile:
    """A connection whose operations each run whole in one ``BEGIN IMMEDIATE`` transaction,
    off the event loop: what a Durable Object's method is to its storage (its statements
    commit together, and no other writer, thread or process, interleaves with them).

    ``execute`` runs one statement inside the operation :meth:`run` has opened."""

    def __init__(self, path: Path | str) -> None:
        self._db = connect(path)
        self._lock = threading.Lock()

    def execute(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        return self._db.execute(sql, tuple(params)).fetchall()

    def _transaction(self, fn: Callable[..., T], *args: Any) -> T:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # the write lock up front
            try:
                result = fn(*args)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return result

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one transaction, on a worker thread."""
        return await asyncio.to_thread(self._transaction, fn, *args)

    def close(self) -> None:
        self._db.close()
