"""The provenance index: every image this deployment generated, found again by its exact
content hash or by its perceptual fingerprint, in SQL that both runtimes run.

Like the spend ledger (:mod:`fluxgate.access.ledger`), the statements live here and run over
any synchronous ``exec(sql, params) -> rows``: on Workers in one SQLite-backed Durable
Object for the whole deployment (``edge/bindings/provenance_object.py``), locally in a
SQLite file (``local/provenance_sqlite.py``). Pydantic-free: the Durable Object imports it.

Two tables:

- ``fingerprints``, one row per generation: who owns it (an account or scope id), when it
  was made, by which model (its served name), the original's SHA-256, and its 64-bit
  perceptual fingerprint (:mod:`fluxgate.provenance.fingerprint`), kept as its four 16-bit
  bands (each indexed) and, for SQL's own use, as one signed 64-bit integer. SQLite's
  integers are signed, so the fingerprint column holds the two's-complement reading of the
  unsigned value; it is computed by SQLite from the bands, and never crosses into
  JavaScript, where an integer past 2**53 cannot be bound or read back exactly. A
  generation that could not be rendered has no fingerprint (NULL columns): its hash still
  finds it.
- ``content_hashes``: the SHA-256 of every file stored for a generation, the original and
  each variant, pointing at the generation. A file is found exactly by its bytes.

Nothing is removed when an image or its record is deleted, nor when retention ages it out:
a deployment must still be able to say that it generated an image whose file is gone (the
logging the EU Code of Practice on marking AI-generated content asks of a provider). A
generation with two variants takes about 800 bytes, indexes included (measured); a Durable
Object's 10 GB hold about twelve million.

The perceptual search is exact and bounded. A match within ``threshold`` bits
(:data:`~fluxgate.provenance.fingerprint.MAX_THRESHOLD` at most) shares at least one band
within :func:`~fluxgate.provenance.fingerprint.band_radius` of the probe's (the pigeonhole
argument, proved in :mod:`fluxgate.provenance.fingerprint`), so each band is looked up by
the exact values near the probe's (137 for a radius of 2), ``IN`` lists of at most
:data:`BAND_VALUES_PER_STATEMENT` values (a Durable Object's SQLite binds at most
:data:`MAX_BINDINGS` parameters a statement). SQLite computes each candidate's full
distance (a popcount of the bands' exclusive or; SQLite has neither, so both are spelled
out in arithmetic) and returns only true matches, nearest first, :data:`MAX_MATCHES` at
most. Each statement keeps its :data:`MAX_MATCHES` nearest in the order (distance, created,
generation); a match among the :data:`MAX_MATCHES` nearest overall is among those of the
statement that finds it through the probe nearest it, since every row ahead of it there is
ahead of it overall. So the merged answer is exactly the :data:`MAX_MATCHES` nearest. One
lookup runs at most :data:`MAX_PROBES` probes x 4 bands x 2 statements.

What a lookup reads grows with the index: each band value is shared by about N / 65,536 of
N generations, so a probe reads some 4 x 137 x N / 65,536 candidate rows (for a million
generations about 8,400, and a verification's ten probes some 84,000: under a second of
the object's CPU, a few cents' worth of rows read per thousand verifications). Real
fingerprints spread less evenly than random ones, which the interleaved bits of
:mod:`fluxgate.provenance.fingerprint` counter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from .fingerprint import BAND_BITS, BANDS, THRESHOLD, band_neighbours, band_radius, bands

__all__ = [
    "MAX_MATCHES",
    "MAX_PROBES",
    "Entry",
    "FingerprintIndex",
    "Match",
    "ProvenanceIndex",
]

MAX_MATCHES = 20  # the nearest matches a lookup answers (and each statement returns)
MAX_PROBES = 16  # fingerprints one lookup may probe with (a verification uses ten)
MAX_BINDINGS = 100  # Durable Object SQLite's limit on bound parameters per statement
# A band statement binds the 4 probe bands, the band values, the threshold and the limit.
BAND_VALUES_PER_STATEMENT = MAX_BINDINGS - BANDS - 2

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_COLUMNS = "generation, owner, created, model, sha256, band0, band1, band2, band3"

FINGERPRINTS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS fingerprints ("
    " generation TEXT PRIMARY KEY, owner TEXT NOT NULL, created INTEGER NOT NULL,"
    " model TEXT NOT NULL, sha256 TEXT NOT NULL, fingerprint INTEGER,"
    " band0 INTEGER, band1 INTEGER, band2 INTEGER, band3 INTEGER)"
)
BAND_INDEXES = tuple(
    f"CREATE INDEX IF NOT EXISTS fingerprints_band{i} ON fingerprints (band{i})"
    for i in range(BANDS)
)
HASHES_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS content_hashes (sha256 TEXT PRIMARY KEY, generation TEXT NOT NULL)"
)
# The fingerprint column is the bands (bound twice) joined by SQLite: a NULL band makes it
# NULL, and 0xFFFF << 48 wraps to a negative integer as two's complement does.
RECORD = (
    "INSERT INTO fingerprints (generation, owner, created, model, sha256,"
    " band0, band1, band2, band3, fingerprint)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, (? << 48) | (? << 32) | (? << 16) | ?)"
    " ON CONFLICT (generation) DO NOTHING RETURNING generation"
)
RECORD_HASH = (
    "INSERT INTO content_hashes (sha256, generation) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING"
)
# A missing fingerprint reads as bands of -1: a NULL would reach Python as JavaScript's null
# on Workers, and as None locally.
BY_HASH = (
    "SELECT f.generation, f.owner, f.created, f.model, f.sha256, ifnull(f.band0, -1),"
    " ifnull(f.band1, -1), ifnull(f.band2, -1), ifnull(f.band3, -1)"
    " FROM content_hashes AS h JOIN fingerprints AS f ON f.generation = h.generation"
    " WHERE h.sha256 = ?"
)
BY_GENERATION = (
    "SELECT generation, owner, created, model, sha256, ifnull(band0, -1), ifnull(band1, -1),"
    " ifnull(band2, -1), ifnull(band3, -1) FROM fingerprints WHERE generation = ?"
)


def _popcount_of_xor(band: int) -> str:
    """SQL for the number of bits in which ``band{band}`` and the probe's band differ: the
    exclusive or as ``(a | b) - (a & b)``, its 16 bits summed one by one."""
    xor = f"((band{band} | probe.p{band}) - (band{band} & probe.p{band}))"
    return " + ".join(f"(({xor} >> {bit}) & 1)" for bit in range(BAND_BITS))


_DISTANCE = " + ".join(f"({_popcount_of_xor(band)})" for band in range(BANDS))


@lru_cache(maxsize=4 * BANDS)
def _nearest_statement(band: int, values: int) -> str:
    """The matches among rows whose ``band{band}`` is one of ``values`` bound values. Built
    from constants only (column names, a count of placeholders): every value is bound."""
    in_list = ", ".join("?" * values)
    return (
        "WITH probe (p0, p1, p2, p3) AS (VALUES (?, ?, ?, ?))"  # noqa: S608
        f" SELECT {_COLUMNS}, distance FROM ("
        f"  SELECT {_COLUMNS}, {_DISTANCE} AS distance"
        f"  FROM fingerprints, probe WHERE band{band} IN ({in_list}))"
        " WHERE distance <= ? ORDER BY distance, created, generation LIMIT ?"
    )


Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


@dataclass(frozen=True)
class Entry:
    """One generation as the index knows it (``fingerprint``: unsigned 64-bit, ``None``
    when the image could not be rendered)."""

    generation: str
    owner: str
    created: int
    model: str
    fingerprint: int | None
    sha256: str


class Match(NamedTuple):
    """A generation whose fingerprint is ``distance`` bits from the nearest probe."""

    entry: Entry
    distance: int


def _entry(row: Sequence[Any]) -> Entry:
    generation, owner, created, model, sha256, *parts = row[:9]
    fingerprint = None
    if int(parts[0]) >= 0:  # -1: none (see BY_HASH)
        fingerprint = 0
        for part in parts:
            fingerprint = (fingerprint << BAND_BITS) | int(part)
    return Entry(str(generation), str(owner), int(created), str(model), fingerprint, str(sha256))


def _checked_sha256(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError("a SHA-256 is 64 lowercase hexadecimal digits")
    return sha256


class FingerprintIndex:
    """The index's logic over any synchronous ``exec(sql, params) -> rows``. Each method's
    statements are meant to commit together (a Durable Object's method; a transaction of
    the local file)."""

    def __init__(self, execute: Exec) -> None:
        self._exec = execute
        for statement in (FINGERPRINTS_SCHEMA, *BAND_INDEXES, HASHES_SCHEMA):
            self._exec(statement, ())

    def record(
        self,
        generation: str,
        owner: str,
        created: int,
        model: str,
        fingerprint: int | None,
        sha256: str,
    ) -> bool:
        """Log a generated original and its content hash; ``False``, and nothing written,
        when the generation was logged before (the first record stands)."""
        parts: tuple[int | None, ...] = (None,) * BANDS
        if fingerprint is not None:
            parts = bands(fingerprint)
        sha256 = _checked_sha256(sha256)
        row = (generation, owner, int(created), model, sha256, *parts, *parts)
        if not self._exec(RECORD, row):
            return False
        self._exec(RECORD_HASH, (sha256, generation))
        return True

    def record_hash(self, sha256: str, generation: str) -> None:
        """Log another file of ``generation`` (a variant) by its content hash. A hash
        logged before keeps the generation it was first logged with."""
        self._exec(RECORD_HASH, (_checked_sha256(sha256), generation))

    def by_hash(self, sha256: str) -> Entry | None:
        """The generation one of whose files has exactly this SHA-256."""
        if not _SHA256.match(sha256):
            return None
        rows = self._exec(BY_HASH, (sha256,))
        return _entry(rows[0]) if rows else None

    def by_generation(self, generation: str) -> Entry | None:
        rows = self._exec(BY_GENERATION, (generation,))
        return _entry(rows[0]) if rows else None

    def nearest(self, fingerprint: int, threshold: int = THRESHOLD) -> list[Match]:
        """The generations whose fingerprints are within ``threshold`` bits of
        ``fingerprint``, nearest first (then oldest), :data:`MAX_MATCHES` at most."""
        return self.nearest_any((fingerprint,), threshold)

    def nearest_any(self, fingerprints: Sequence[int], threshold: int = THRESHOLD) -> list[Match]:
        """:meth:`nearest` for several probes at once (an image's
        :func:`~fluxgate.provenance.fingerprint.probes`): each generation at its distance to
        the probe nearest it."""
        if len(fingerprints) > MAX_PROBES:
            raise ValueError(f"at most {MAX_PROBES} fingerprints are looked up at once")
        radius = band_radius(threshold)
        found: dict[str, Match] = {}
        for fingerprint in dict.fromkeys(fingerprints):
            probe = bands(fingerprint)
            for band, value in enumerate(probe):
                near = band_neighbours(value, radius)
                for start in range(0, len(near), BAND_VALUES_PER_STATEMENT):
                    chunk = near[start : start + BAND_VALUES_PER_STATEMENT]
                    rows = self._exec(
                        _nearest_statement(band, len(chunk)),
                        (*probe, *chunk, threshold, MAX_MATCHES),
                    )
                    for row in rows:
                        match = Match(_entry(row), int(row[9]))
                        known = found.get(match.entry.generation)
                        if known is None or match.distance < known.distance:
                            found[match.entry.generation] = match
        ranked = sorted(
            found.values(),
            key=lambda m: (m.distance, m.entry.created, m.entry.generation),
        )
        return ranked[:MAX_MATCHES]


class ProvenanceIndex(Protocol):
    """The async port the gateway uses; one implementation per runtime."""

    async def record(
        self,
        generation: str,
        owner: str,
        created: int,
        model: str,
        fingerprint: int | None,
        sha256: str,
    ) -> bool: ...

    async def record_hash(self, sha256: str, generation: str) -> None: ...

    async def by_hash(self, sha256: str) -> Entry | None: ...

    async def by_generation(self, generation: str) -> Entry | None: ...

    async def nearest(self, fingerprint: int, threshold: int = THRESHOLD) -> list[Match]: ...

    async def nearest_any(
        self, fingerprints: Sequence[int], threshold: int = THRESHOLD
    ) -> list[Match]: ...
