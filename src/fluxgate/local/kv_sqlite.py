"""KV on SQLite: the local peer of a Workers KV namespace.

Keeps KV's observable rules (key and value size limits, ``expirationTtl`` of at least 60 s,
1 KiB of metadata, prefix listing in key order with a cursor) so that a write refused on
Cloudflare is refused here too. Calls run in a thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..store.ports import KVEntry, KVLimitError, KVPage, check_kv_key, check_kv_write
from .sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    metadata TEXT,
    expires REAL
)
"""


class SqliteKV:
    def __init__(self, path: Path | str, clock: Callable[[], float] = time.time) -> None:
        self._db = connect(path)
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()
        self._clock = clock

    async def _run(self, fn: Callable[[], object]) -> object:
        def locked() -> object:
            with self._lock:
                return fn()

        return await asyncio.to_thread(locked)

    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        """Reads are local: there is no edge cache for ``cache_ttl`` to tune, so it only has
        to be valid (KV refuses less than 30 s)."""
        check_kv_key(key)
        if cache_ttl is not None and cache_ttl < 30:
            raise KVLimitError(f"cacheTtl is {cache_ttl}s; the minimum is 30s.")
        now = self._clock()

        # A point read of an indexed row in WAL mode takes microseconds: done inline, it is
        # cheaper than the hop to a worker thread (the hot path reads twice per request).
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM kv WHERE key = ? AND (expires IS NULL OR expires > ?)",
                (key, now),
            ).fetchone()
        return None if row is None else bytes(row[0]).decode()

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        check_kv_write(key, value, ttl, metadata)
        expires = self._clock() + ttl if ttl is not None else None
        meta = json.dumps(metadata) if metadata is not None else None
        # Inline like reads: a WAL commit without fsync takes tens of microseconds, less
        # than a hop to a worker thread (a miss writes twice).
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO kv (key, value, metadata, expires) VALUES (?, ?, ?, ?)",
                (key, value.encode(), meta, expires),
            )

    async def delete(self, key: str) -> None:
        check_kv_key(key)
        await self._run(lambda: self._db.execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def list(self, prefix: str, *, limit: int = 1000, cursor: str | None = None) -> KVPage:
        limit = max(1, min(limit, 1000))
        now = self._clock()
        after = cursor or ""  # every key sorts after ""; a cursor is the last key returned

        def op() -> object:
            return self._db.execute(
                "SELECT key, metadata FROM kv WHERE key > ? AND substr(key, 1, ?) = ? "
                "AND (expires IS NULL OR expires > ?) ORDER BY key LIMIT ?",
                (after, len(prefix), prefix, now, limit + 1),
            ).fetchall()

        rows = list(await self._run(op))  # type: ignore[call-overload]
        more = len(rows) > limit
        rows = rows[:limit]
        keys = [KVEntry(k, json.loads(m) if m else None) for k, m in rows]
        return KVPage(keys, rows[-1][0] if more else None, not more)

    def close(self) -> None:
        self._db.close()
