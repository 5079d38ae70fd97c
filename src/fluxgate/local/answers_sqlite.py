"""Idempotency keys on a local SQLite file (one file for every key; the Durable Object's
peer): exact across threads and processes.

Each call runs whole in one ``BEGIN IMMEDIATE`` transaction, as the Durable Object runs it
in one synchronous turn: a claim's upsert and the read that follows it see the same row,
even with another process sharing the file.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from ..store.answers import Caps, Claim, IdempotencyTable, StoredResponse
from .sqlite import TransactionalFile


class SqliteIdempotency:
    """:class:`~fluxgate.store.answers.IdempotencyStore` locally (one table for every
    API key: ``account`` is a column, which the caps count by)."""

    def __init__(self, path: Path | str) -> None:
        self._file = TransactionalFile(path)
        self._table = IdempotencyTable(self._file.execute)
        self._run = self._file.run

    async def claim(
        self,
        account: str,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        caps: Caps,
    ) -> Claim:
        return await self._run(
            partial(self._table.claim, account=account, caps=caps),
            scope,
            key,
            fingerprint,
            token,
            now,
        )

    async def complete(
        self,
        account: str,
        scope: str,
        key: str,
        token: str,
        response: StoredResponse,
        now: float,
    ) -> bool:
        return await self._run(self._table.complete, scope, key, token, response, now)

    async def release(self, account: str, scope: str, key: str, token: str) -> None:
        await self._run(self._table.release, scope, key, token)

    def close(self) -> None:
        self._file.close()
