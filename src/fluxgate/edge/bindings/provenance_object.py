"""The provenance index on Workers: one SQLite-backed Durable Object for the deployment.

"Did this deployment generate this image?" is asked of every image the deployment made,
whoever owns it, so the index is one object (by name, :data:`OBJECT_NAME`), not one per
key: a lookup is one call, never a fan-out. It runs
:class:`~fluxgate.provenance.index.FingerprintIndex` on its own SQLite storage; a record is
one write a generation, well within one object's throughput. ``ProvenanceIndexObject`` is
the object (exported by the Worker entry); ``WorkersProvenance`` is the client the
gateway uses.

Only strings and small integers cross the RPC boundary: a 64-bit fingerprint travels as 16
hexadecimal digits (a JavaScript number holds 53 bits exactly, and a BigInt is refused by
the SQL binding), several as one comma-separated string; "" stands for none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workers import DurableObject

from ...provenance.fingerprint import THRESHOLD
from ...provenance.index import Entry, FingerprintIndex, Match
from ..ffi import py_value, sql_executor, unwrap

OBJECT_NAME = "provenance"


def _hex(fingerprint: int | None) -> str:
    return "" if fingerprint is None else f"{fingerprint:016x}"


def _fingerprint(text: str) -> int | None:
    return int(text, 16) if text else None


def _row(entry: Entry) -> list[Any]:
    return [
        entry.generation,
        entry.owner,
        entry.created,
        entry.model,
        _hex(entry.fingerprint),
        entry.sha256,
    ]


def _entry(row: Sequence[Any]) -> Entry:
    generation, owner, created, model, fingerprint, sha256 = row
    return Entry(
        str(generation),
        str(owner),
        int(created),
        str(model),
        _fingerprint(str(fingerprint)),
        str(sha256),
    )


class ProvenanceIndexObject(DurableObject):
    """The Durable Object: RPC methods over :class:`~fluxgate.provenance.index.FingerprintIndex`.
    Each method's statements run without an ``await`` between them, so they commit
    together."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._index = FingerprintIndex(sql_executor(self.ctx.storage))

    async def record(
        self, generation: str, owner: str, created: int, model: str, fingerprint: str, sha256: str
    ) -> bool:
        """``fingerprint``: 16 hexadecimal digits, "" for none."""
        return self._index.record(
            str(generation),
            str(owner),
            int(created),
            str(model),
            _fingerprint(str(fingerprint or "")),
            str(sha256),
        )

    async def record_hash(self, sha256: str, generation: str) -> None:
        self._index.record_hash(str(sha256), str(generation))

    async def by_hash(self, sha256: str) -> list[Any]:
        """``[generation, owner, created, model, fingerprint, sha256]``, ``[]`` for none."""
        entry = self._index.by_hash(str(sha256))
        return [] if entry is None else _row(entry)

    async def by_generation(self, generation: str) -> list[Any]:
        entry = self._index.by_generation(str(generation))
        return [] if entry is None else _row(entry)

    async def nearest(self, fingerprints: str, threshold: int) -> list[list[Any]]:
        """``fingerprints``: comma-separated hexadecimal; ``[[...entry, distance], ...]``,
        nearest first."""
        probes = [int(text, 16) for text in str(fingerprints).split(",") if text]
        matches = self._index.nearest_any(probes, int(threshold))
        return [[*_row(match.entry), match.distance] for match in matches]


class WorkersProvenance:
    """The gateway's :class:`~fluxgate.provenance.index.ProvenanceIndex`, calling the one
    object."""

    def __init__(self, namespace: Any) -> None:
        self._namespace = unwrap(namespace)

    def _stub(self) -> Any:
        return self._namespace.get(self._namespace.idFromName(OBJECT_NAME))

    async def record(
        self,
        generation: str,
        owner: str,
        created: int,
        model: str,
        fingerprint: int | None,
        sha256: str,
    ) -> bool:
        return bool(
            await self._stub().record(
                generation, owner, int(created), model, _hex(fingerprint), sha256
            )
        )

    async def record_hash(self, sha256: str, generation: str) -> None:
        await self._stub().record_hash(sha256, generation)

    async def by_hash(self, sha256: str) -> Entry | None:
        row = py_value(await self._stub().by_hash(sha256))
        return _entry(row) if row else None

    async def by_generation(self, generation: str) -> Entry | None:
        row = py_value(await self._stub().by_generation(generation))
        return _entry(row) if row else None

    async def nearest(self, fingerprint: int, threshold: int = THRESHOLD) -> list[Match]:
        return await self.nearest_any((fingerprint,), threshold)

    async def nearest_any(
        self, fingerprints: Sequence[int], threshold: int = THRESHOLD
    ) -> list[Match]:
        probes = ",".join(_hex(fingerprint) for fingerprint in fingerprints)
        rows = py_value(await self._stub().nearest(probes, threshold))
        return [Match(_entry(row[:6]), int(row[6])) for row in rows]


def provenance_from_env(env: Any) -> WorkersProvenance | None:
    """The index when the ``PROVENANCE`` binding is declared (else verification answers
    without it)."""
    binding = getattr(env, "PROVENANCE", None)
    return None if binding is None else WorkersProvenance(binding)
