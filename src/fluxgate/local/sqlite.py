"""The SQLite settings every local store shares."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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
