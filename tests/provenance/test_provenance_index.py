"""The provenance index on the local SQLite adapter: exact content hashes, and a perceptual
search that finds exactly what brute force finds, nearest first, within fixed bounds.

The SQL is the one the Durable Object runs (:mod:`fluxgate.provenance.index`); what is
specific to a Durable Object's SQLite is checked on the statements themselves: no statement
binds more than its 100 parameters, and every band lookup searches an index.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from fluxgate.local.provenance_sqlite import SqliteProvenance
from fluxgate.provenance.fingerprint import MAX_THRESHOLD, THRESHOLD, hamming
from fluxgate.provenance.index import MAX_MATCHES, MAX_PROBES, FingerprintIndex, Match

pytestmark = pytest.mark.anyio

MODEL = "@cf/black-forest-labs/flux-2-klein-4b"


def sha(n: int | str) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def flipped(value: int, count: int, rng: random.Random) -> int:
    """``value`` with ``count`` distinct bits flipped."""
    for bit in rng.sample(range(64), count):
        value ^= 1 << bit
    return value


@pytest.fixture
def index(tmp_path: Path) -> Any:
    made = SqliteProvenance(tmp_path / "provenance.sqlite3")
    yield made
    made.close()


def brute_force(
    stored: dict[str, tuple[int, int]], probes: Sequence[int], threshold: int
) -> list[tuple[str, int]]:
    """``(generation, distance)`` of every stored fingerprint within ``threshold`` of a
    probe, at its nearest probe, in the index's order (distance, created, generation)."""
    found = []
    for generation, (fingerprint, created) in stored.items():
        nearest = min(hamming(fingerprint, probe) for probe in probes)
        if nearest <= threshold:
            found.append((nearest, created, generation))
    return [(generation, d) for d, _, generation in sorted(found)]


def answered(matches: list[Match]) -> list[tuple[str, int]]:
    return [(match.entry.generation, match.distance) for match in matches]


async def test_the_perceptual_search_finds_exactly_what_brute_force_finds(index):
    """Three thousand random fingerprints and, around some queries, planted neighbours at
    every distance up to past the threshold: each answer is brute force's, in its order."""
    rng = random.Random(7)
    stored: dict[str, tuple[int, int]] = {}
    queries = [rng.getrandbits(64) for _ in range(40)]
    for n in range(3000):
        stored[f"gen_{n}"] = (rng.getrandbits(64), 1_700_000_000 + rng.randrange(10**6))
    for q, query in enumerate(queries[:25]):
        for k in range(rng.randrange(1, 6)):
            fingerprint = flipped(query, rng.randrange(0, MAX_THRESHOLD + 4), rng)
            stored[f"near_{q}_{k}"] = (fingerprint, 1_700_000_000 + rng.randrange(10**6))
    for generation, (fingerprint, created) in stored.items():
        await index.record(generation, "acct_1", created, MODEL, fingerprint, sha(generation))
    for threshold in (0, 4, THRESHOLD, MAX_THRESHOLD):
        for query in queries:
            expected = brute_force(stored, [query], threshold)[:MAX_MATCHES]
            assert answered(await index.nearest(query, threshold)) == expected
    assert any(brute_force(stored, [query], THRESHOLD) for query in queries)  # not all empty


async def test_several_probes_find_each_generation_at_its_nearest_probe(index):
    rng = random.Random(11)
    stored: dict[str, tuple[int, int]] = {}
    base = [rng.getrandbits(64) for _ in range(10)]
    for n, fingerprint in enumerate(base):
        for k in range(4):
            near = flipped(fingerprint, rng.randrange(0, 10), rng)
            stored[f"g{n}_{k}"] = (near, 1_700_000_000 + n * 10 + k)
    for n in range(500):
        stored[f"other_{n}"] = (rng.getrandbits(64), 1_600_000_000 + n)
    for generation, (fingerprint, created) in stored.items():
        await index.record(generation, "acct_1", created, MODEL, fingerprint, sha(generation))
    probes = [flipped(base[n], 2, rng) for n in (0, 3, 7)]
    expected = brute_force(stored, probes, THRESHOLD)
    assert expected
    assert answered(await index.nearest_any(probes, THRESHOLD)) == expected[:MAX_MATCHES]


async def test_a_lookup_answers_at_most_the_nearest_max_matches(index):
    rng = random.Random(3)
    query = rng.getrandbits(64)
    stored = {}
    for n in range(3 * MAX_MATCHES):
        fingerprint = flipped(query, n % (THRESHOLD + 1), rng)
        stored[f"gen_{n:03}"] = (fingerprint, 1_700_000_000 + n)
        await index.record(f"gen_{n:03}", "acct_1", 1_700_000_000 + n, MODEL, fingerprint, sha(n))
    found = await index.nearest(query, THRESHOLD)
    assert len(found) == MAX_MATCHES
    assert answered(found) == brute_force(stored, [query], THRESHOLD)[:MAX_MATCHES]
    assert [m.distance for m in found] == sorted(m.distance for m in found)


async def test_a_file_is_found_by_its_content_hash_the_original_and_each_variant(index):
    fingerprint = 0x0123_4567_89AB_CDEF
    assert await index.record("gen_a", "acct_1", 1_700_000_000, MODEL, fingerprint, sha("a"))
    await index.record_hash(sha("a.256.webp"), "gen_a")
    for digest in (sha("a"), sha("a.256.webp")):
        entry = await index.by_hash(digest)
        assert entry is not None
        assert (entry.generation, entry.owner, entry.created) == ("gen_a", "acct_1", 1_700_000_000)
        assert (entry.model, entry.fingerprint, entry.sha256) == (MODEL, fingerprint, sha("a"))
    assert await index.by_generation("gen_a") == await index.by_hash(sha("a"))
    assert await index.by_hash(sha("never stored")) is None
    assert await index.by_hash("not a hash") is None
    assert await index.by_generation("gen_b") is None


async def test_the_first_record_of_a_generation_and_of_a_hash_stands(index):
    assert await index.record("gen_a", "acct_1", 1_700_000_000, MODEL, 5, sha("a"))
    assert not await index.record("gen_a", "acct_2", 1_800_000_000, "other", 6, sha("b"))
    await index.record_hash(sha("a"), "gen_z")
    entry = await index.by_hash(sha("a"))
    assert entry is not None and (entry.owner, entry.fingerprint) == ("acct_1", 5)
    assert await index.by_hash(sha("b")) is None


async def test_a_generation_without_a_fingerprint_is_found_by_its_hash_only(index):
    await index.record("gen_a", "acct_1", 1_700_000_000, MODEL, None, sha("a"))
    entry = await index.by_hash(sha("a"))
    assert entry is not None and entry.fingerprint is None
    assert await index.nearest(0, MAX_THRESHOLD) == []


async def test_the_fingerprint_is_stored_as_a_signed_64_bit_integer(index, tmp_path):
    """SQLite's integers are signed: the top bit set reads as a negative number."""
    values = {"low": 1, "top": 2**63, "all": 2**64 - 1, "mixed": 0xFEDC_BA98_7654_3210}
    for name, value in values.items():
        await index.record(name, "acct_1", 1_700_000_000, MODEL, value, sha(name))
        entry = await index.by_generation(name)
        assert entry is not None and entry.fingerprint == value
    with sqlite3.connect(tmp_path / "provenance.sqlite3") as db:
        rows = dict(db.execute("SELECT generation, fingerprint FROM fingerprints").fetchall())
    assert rows == {
        name: value - 2**64 if value >= 2**63 else value for name, value in values.items()
    }


async def test_out_of_bounds_lookups_and_records_are_refused(index):
    with pytest.raises(ValueError):
        await index.nearest(1, MAX_THRESHOLD + 1)
    with pytest.raises(ValueError):
        await index.nearest_any(list(range(MAX_PROBES + 1)), THRESHOLD)
    with pytest.raises(ValueError):
        await index.nearest(2**64, THRESHOLD)
    with pytest.raises(ValueError):
        await index.record("gen_a", "acct_1", 1_700_000_000, MODEL, 2**64, sha("a"))
    with pytest.raises(ValueError):
        await index.record("gen_a", "acct_1", 1_700_000_000, MODEL, 1, "ABC")
    with pytest.raises(ValueError):
        await index.record_hash("not a hash", "gen_a")


class Recorder:
    """An ``exec`` over an in-memory SQLite that keeps every statement and its bindings."""

    def __init__(self) -> None:
        self.db = sqlite3.connect(":memory:", isolation_level=None)
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers: list[Sequence[Any]] = []

    def __call__(self, sql: str, params: Sequence[Any]) -> list[Sequence[Any]]:
        self.calls.append((sql, tuple(params)))
        rows = self.db.execute(sql, tuple(params)).fetchall()
        self.answers.extend(rows)
        return rows


def test_every_statement_fits_a_durable_objects_sqlite_and_the_search_is_bounded():
    """A Durable Object's SQLite binds at most 100 parameters a statement, and an integer
    crosses into JavaScript exactly only below 2**53: the widest lookup stays within both,
    runs at most 2 statements per band and probe, and each band statement searches its
    index."""
    recorder = Recorder()
    table = FingerprintIndex(recorder)
    rng = random.Random(5)
    for n in range(200):
        table.record(f"gen_{n}", "acct_1", 1_700_000_000 + n, MODEL, rng.getrandbits(64), sha(n))
    table.record_hash(sha("variant"), "gen_1")
    table.by_hash(sha(1))
    recorder.calls.clear()
    probes = [rng.getrandbits(64) for _ in range(MAX_PROBES)]
    table.nearest_any(probes, MAX_THRESHOLD)
    assert 0 < len(recorder.calls) <= MAX_PROBES * 4 * 2
    for sql, params in recorder.calls:
        assert len(params) <= 100
        plan = " ".join(
            str(row[-1]) for row in recorder.db.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        )
        assert "USING INDEX fingerprints_band" in plan and "SCAN fingerprints" not in plan
    table.record("big", "acct_1", 1_700_000_000, MODEL, 2**64 - 1, sha("big"))
    table.record("flat", "acct_1", 1_700_000_000, MODEL, None, sha("flat"))
    recorder.answers.clear()
    assert table.by_hash(sha("big")) is not None and table.by_generation("flat") is not None
    every = [value for _, params in recorder.calls for value in params]
    every += [value for row in recorder.answers for value in row]
    assert all(abs(value) < 2**53 for value in every if isinstance(value, int))
    # A NULL would reach Python as JavaScript's null on Workers: none is ever read back.
    assert all(value is not None for row in recorder.answers for value in row)
