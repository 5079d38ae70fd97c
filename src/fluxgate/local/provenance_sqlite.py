"""The provenance index on a local SQLite file (``provenance.sqlite3`` in the data directory).

Each operation runs in one ``BEGIN IMMEDIATE`` transaction on a worker thread, as a Durable
Object's method commits its statements together: a generation's row and its content hash
are written both or neither, and a lookup's band statements read one state of the index.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..provenance.fingerprint import THRESHOLD
from ..provenance.index import Entry, FingerprintIndex, Match
from .sqlite import TransactionalFile


class SqliteProvenance:
    """The local :class:`~fluxgate.provenance.index.ProvenanceIndex`."""

    def __init__(self, path: Path | str) -> None:
        self._file = TransactionalFile(path)
        self._index = FingerprintIndex(self._file.execute)
        self._run = self._file.run

    async def record(
        self,
        generation: str,
        owner: str,
        created: int,
        model: str,
        fingerprint: int | None,
        sha256: str,
    ) -> bool:
        return await self._run(
            self._index.record, generation, owner, created, model, fingerprint, sha256
        )

    async def record_hash(self, sha256: str, generation: str) -> None:
        await self._run(self._index.record_hash, sha256, generation)

    async def by_hash(self, sha256: str) -> Entry | None:
        return await self._run(self._index.by_hash, sha256)

    async def by_generation(self, generation: str) -> Entry | None:
        return await self._run(self._index.by_generation, generation)

    async def nearest(self, fingerprint: int, threshold: int = THRESHOLD) -> list[Match]:
        return await self._run(self._index.nearest, fingerprint, threshold)

    async def nearest_any(
        self, fingerprints: Sequence[int], threshold: int = THRESHOLD
    ) -> list[Match]:
        return await self._run(self._index.nearest_any, tuple(fingerprints), threshold)

    def close(self) -> None:
        self._file.close()
