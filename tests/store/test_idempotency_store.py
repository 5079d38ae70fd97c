"""Idempotency keys' store: one claim wins, answers replay, dead claims are taken over."""

import asyncio
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fluxgate.local.answers_sqlite import SqliteIdempotency
from fluxgate.local.sqlite import connect
from fluxgate.store.answers import (
    ANSWER_RESERVE,
    LEASE_SECONDS,
    READ,
    RETENTION_SECONDS,
    UNCAPPED,
    Caps,
    Claim,
    IdempotencyTable,
    StoredResponse,
    answer_size,
    claim_fields,
    claim_from_fields,
    claim_size,
)

NOW = 1_800_000_000.0
ANSWER = StoredResponse(200, '{"id":"img_1"}', {"X-Cache": "MISS", "X-Request-Id": "req_1"})


@pytest.fixture
def table(tmp_path: Path) -> IdempotencyTable:
    db = connect(tmp_path / "idempotency.sqlite3")
    return IdempotencyTable(lambda sql, params: db.execute(sql, tuple(params)).fetchall())


def test_the_first_claim_starts_and_the_same_request_then_waits(table):
    assert table.claim("key_1", "k", "fp", "t1", NOW) == Claim("started")
    again = table.claim("key_1", "k", "fp", "t2", NOW + 10.5)
    assert again.state == "running" and again.response is None
    assert again.retry_after == LEASE_SECONDS - 10  # ceil(589.5)
    assert table.claim("key_1", "k", "fp", "t3", NOW + LEASE_SECONDS - 0.2).retry_after == 1


def test_a_completed_claim_replays_its_answer(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    assert table.complete("key_1", "k", "t1", ANSWER, NOW + 5)
    assert table.claim("key_1", "k", "fp", "t2", NOW + 6) == Claim("done", ANSWER)
    # long after the lease: a done row is no claim to take over
    assert table.claim("key_1", "k", "fp", "t3", NOW + 3 * LEASE_SECONDS).response == ANSWER


def test_an_image_key_is_stored_and_none_stays_none(table):
    spliced = StoredResponse(200, '{"data":[{"b64_json":""}]}', {}, "images/abc.png")
    table.claim("key_1", "b64", "fp", "t1", NOW)
    table.complete("key_1", "b64", "t1", spliced, NOW)
    assert table.claim("key_1", "b64", "fp", "t2", NOW).response == spliced
    table.claim("key_1", "url", "fp", "t1", NOW)
    table.complete("key_1", "url", "t1", ANSWER, NOW)
    replayed = table.claim("key_1", "url", "fp", "t2", NOW).response
    assert replayed is not None and replayed.image_key is None


def test_another_request_under_the_same_key_is_a_mismatch_whatever_its_state(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    assert table.claim("key_1", "k", "other", "t2", NOW + 1) == Claim("mismatch")
    table.complete("key_1", "k", "t1", ANSWER, NOW + 2)
    assert table.claim("key_1", "k", "other", "t3", NOW + 3) == Claim("mismatch")


def test_keys_are_per_scope(table):
    assert table.claim("key_1", "k", "fp", "t1", NOW).state == "started"
    assert table.claim("key_1/user_a", "k", "other", "t2", NOW).state == "started"
    assert table.claim("key_2", "k", "fp", "t3", NOW).state == "started"


def test_a_key_is_forgotten_24_hours_after_its_first_request(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    table.complete("key_1", "k", "t1", ANSWER, NOW + 100)
    almost = NOW + RETENTION_SECONDS - 1
    assert table.claim("key_1", "k", "fp", "t2", almost).state == "done"
    assert table.claim("key_1", "k", "other", "t3", NOW + RETENTION_SECONDS).state == "started"


def test_a_running_claim_past_its_lease_is_taken_over_and_its_holder_loses(table):
    table.claim("key_1", "k", "fp", "crashed", NOW)
    later = NOW + LEASE_SECONDS
    assert table.claim("key_1", "k", "fp", "new", later) == Claim("started")
    assert not table.complete("key_1", "k", "crashed", ANSWER, later + 1)
    table.release("key_1", "k", "crashed")  # a stale release leaves the new claim alone
    assert table.claim("key_1", "k", "fp", "third", later + 2).state == "running"
    mine = StoredResponse(201, "{}", {})
    assert table.complete("key_1", "k", "new", mine, later + 3)
    assert table.claim("key_1", "k", "fp", "fourth", later + 4) == Claim("done", mine)


def test_complete_is_refused_for_an_unknown_token_and_once_done(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    assert not table.complete("key_1", "k", "not-mine", ANSWER, NOW + 1)
    assert table.complete("key_1", "k", "t1", ANSWER, NOW + 1)
    assert not table.complete("key_1", "k", "t1", StoredResponse(500, "{}", {}), NOW + 2)
    assert table.claim("key_1", "k", "fp", "t2", NOW + 3).response == ANSWER
    assert not table.complete("key_1", "missing", "t1", ANSWER, NOW)


def test_complete_after_expiry_stores_nothing(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    assert not table.complete("key_1", "k", "t1", ANSWER, NOW + RETENTION_SECONDS)


def test_release_lets_the_retry_run_again_and_leaves_answers_alone(table):
    table.claim("key_1", "k", "fp", "t1", NOW)
    table.release("key_1", "k", "not-mine")
    assert table.claim("key_1", "k", "fp", "t2", NOW + 1).state == "running"
    table.release("key_1", "k", "t1")
    assert table.claim("key_1", "k", "fp", "t2", NOW + 2) == Claim("started")
    table.complete("key_1", "k", "t2", ANSWER, NOW + 3)
    table.release("key_1", "k", "t2")  # a done row is kept
    assert table.claim("key_1", "k", "fp", "t3", NOW + 4).state == "done"


def test_claims_prune_expired_rows_a_bounded_batch_at_a_time(tmp_path):
    db = sqlite3.connect(tmp_path / "prune.sqlite3", isolation_level=None)
    table = IdempotencyTable(
        lambda sql, params: db.execute(sql, tuple(params)).fetchall(), prune_batch=4
    )
    for n in range(10):
        table.claim("key_1", f"k{n}", "fp", "t", NOW + n)
    count = "SELECT COUNT(*) FROM idempotency_keys"
    later = NOW + RETENTION_SECONDS + 100
    table.claim("key_2", "fresh", "fp", "t", later)
    assert db.execute(count).fetchone()[0] == 10 - 4 + 1
    table.claim("key_2", "fresh2", "fp", "t", later)
    table.claim("key_2", "fresh3", "fp", "t", later)
    assert db.execute(count).fetchone()[0] == 3  # only the live ones are left
    plan = " ".join(
        str(row)
        for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT rowid FROM idempotency_keys "
            "WHERE expires <= 1 ORDER BY expires LIMIT 4"
        )
    )
    assert "idempotency_keys_by_expiry" in plan


def test_a_row_released_between_the_upsert_and_the_read_is_claimed_again(tmp_path):
    """Over a store without transactions, a release may land between the two statements."""
    db = connect(tmp_path / "race.sqlite3")
    raced: list[str] = []

    def execute(sql, params):
        if sql == READ and not raced:
            raced.append(sql)
            db.execute("DELETE FROM idempotency_keys")
        return db.execute(sql, tuple(params)).fetchall()

    table = IdempotencyTable(execute)
    table.claim("key_1", "k", "fp", "t1", NOW)
    assert table.claim("key_1", "k", "fp", "t2", NOW + 1) == Claim("started")
    assert raced


def test_claims_cross_the_rpc_boundary_as_fields_and_back():
    for claim in (
        Claim("started"),
        Claim("running", retry_after=7),
        Claim("mismatch"),
        Claim("done", ANSWER),
        Claim("done", StoredResponse(200, "{}", {}, "images/x.png")),
    ):
        fields = claim_fields(claim)
        assert all(type(f) in (str, int) for f in fields)
        assert claim_from_fields(fields) == claim
    with pytest.raises(ValueError):
        claim_from_fields(["maybe", 0, 0, "", "{}", ""])


# -- concurrency ---------------------------------------------------------------------------


def test_twenty_threads_claiming_one_key_start_it_once(tmp_path):
    path = tmp_path / "threads.sqlite3"
    stores = [SqliteIdempotency(path) for _ in range(4)]  # four connections to the file
    barrier = threading.Barrier(20)
    states: list[str] = []

    def claimer(n: int) -> None:
        store = stores[n % len(stores)]
        barrier.wait()
        claim = asyncio.run(store.claim("key_1", "key_1", "k", "fp", f"t{n}", NOW, UNCAPPED))
        states.append(claim.state)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert sorted(states) == ["running"] * 19 + ["started"]


@pytest.mark.anyio
async def test_twenty_tasks_on_one_store_start_it_once(tmp_path):
    store = SqliteIdempotency(tmp_path / "tasks.sqlite3")
    try:
        claims = await asyncio.gather(
            *(store.claim("key_1", "key_1", "k", "fp", f"t{n}", NOW, UNCAPPED) for n in range(20))
        )
        assert sorted(c.state for c in claims) == ["running"] * 19 + ["started"]
        (winner,) = [n for n, c in enumerate(claims) if c.state == "started"]
        assert not await store.complete("key_1", "key_1", "k", "t-none", ANSWER, NOW)
        assert await store.complete("key_1", "key_1", "k", f"t{winner}", ANSWER, NOW + 1)
        replay = await store.claim("key_1", "key_1", "k", "fp", "t-late", NOW + 2, UNCAPPED)
        assert replay == Claim("done", ANSWER)
        await store.release("key_1", "key_1", "k", f"t{winner}")  # done: kept
        assert (
            await store.claim("key_1", "key_1", "k", "fp", "t", NOW + 3, UNCAPPED)
        ).state == "done"
    finally:
        store.close()


@pytest.mark.anyio
async def test_two_stores_on_one_file_see_one_claim(tmp_path):
    first = SqliteIdempotency(tmp_path / "shared.sqlite3")
    second = SqliteIdempotency(tmp_path / "shared.sqlite3")
    try:
        claims = await asyncio.gather(
            *(
                (first if n % 2 else second).claim(
                    "key_1", "key_1", "k", "fp", f"t{n}", NOW, UNCAPPED
                )
                for n in range(20)
            )
        )
        assert sorted(c.state for c in claims) == ["running"] * 19 + ["started"]
        (winner,) = [n for n, c in enumerate(claims) if c.state == "started"]
        assert await (first if winner % 2 else second).complete(
            "key_1", "key_1", "k", f"t{winner}", ANSWER, NOW + 1
        )
        assert (
            await (second if winner % 2 else first).claim(
                "key_1", "key_1", "k", "fp", "t-other", NOW + 2, UNCAPPED
            )
        ) == Claim("done", ANSWER)
    finally:
        first.close()
        second.close()


def test_processes_sharing_the_file_start_each_key_once(tmp_path):
    """Across processes: three claim the same 50 keys; each key is started exactly once."""
    script = (
        "import asyncio, sys\n"
        "from fluxgate.store.answers import UNCAPPED\n"
        "from fluxgate.local.answers_sqlite import SqliteIdempotency\n"
        "async def main():\n"
        "    store = SqliteIdempotency(sys.argv[1])\n"
        "    started = 0\n"
        "    for n in range(50):\n"
        "        claim = await store.claim(\n"
        "            'a', 'key_1', f'k{n}', 'fp', sys.argv[2], 1.0e9, UNCAPPED\n"
        "        )\n"
        "        started += claim.state == 'started'\n"
        "    print(started)\n"
        "asyncio.run(main())\n"
    )
    path = str(tmp_path / "processes.sqlite3")
    SqliteIdempotency(path).close()  # the schema, made once
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, path, f"p{n}"], stdout=subprocess.PIPE, text=True
        )
        for n in range(3)
    ]
    assert sum(int(p.communicate(timeout=60)[0]) for p in procs) == 50


# -- caps per API key ----------------------------------------------------------------------


def usage(table_db, account="key_1"):
    row = table_db.execute(
        "SELECT rows, bytes FROM idempotency_usage WHERE account = ?", (account,)
    ).fetchone()
    return tuple(row) if row else (0, 0)


@pytest.fixture
def db(tmp_path: Path) -> sqlite3.Connection:
    return sqlite3.connect(tmp_path / "caps.sqlite3", isolation_level=None)


def capped(db: sqlite3.Connection) -> IdempotencyTable:
    return IdempotencyTable(lambda sql, params: db.execute(sql, tuple(params)).fetchall())


def test_an_account_holds_at_most_its_rows(db):
    table, caps = capped(db), Caps(rows=2, bytes=10**9)
    for n, scope in enumerate(("key_1", "key_1/alice")):  # end users count for their key
        claim = table.claim(scope, f"k{n}", "fp", "t", NOW + n, account="key_1", caps=caps)
        assert claim.state == "started"
    full = table.claim("key_1", "k2", "fp", "t", NOW + 10, account="key_1", caps=caps)
    assert full == Claim("full", retry_after=RETENTION_SECONDS - 10)  # the oldest's expiry
    # a stored key still answers; another account has caps of its own
    assert table.claim("key_1", "k0", "fp", "t2", NOW + 10, account="key_1", caps=caps).state == (
        "running"
    )
    assert table.claim("key_2", "k2", "fp", "t", NOW, account="key_2", caps=caps).state == (
        "started"
    )
    # once the oldest expires there is room again
    later = NOW + RETENTION_SECONDS + 0.5
    assert table.claim("key_1", "k2", "fp", "t", later, account="key_1", caps=caps).state == (
        "started"
    )
    assert usage(db)[0] == 2


def test_an_account_holds_at_most_its_bytes_running_claims_reserving_their_answer(db):
    table = capped(db)
    one = claim_size("key_1", "k0", "fp", "t")
    caps = Caps(rows=100, bytes=2 * one)
    assert table.claim("key_1", "k0", "fp", "t", NOW, account="key_1", caps=caps).state == (
        "started"
    )
    assert table.claim("key_1", "k1", "fp", "t", NOW, account="key_1", caps=caps).state == (
        "started"
    )
    assert table.claim("key_1", "k2", "fp", "t", NOW, account="key_1", caps=caps).state == "full"
    assert usage(db) == (2, 2 * one)
    # a stored answer takes its own size, not the reserve: room for the next claim
    assert table.complete("key_1", "k0", "t", ANSWER, NOW + 1)
    assert usage(db) == (2, 2 * one - ANSWER_RESERVE + answer_size(ANSWER))
    assert table.complete("key_1", "k1", "t", ANSWER, NOW + 1)
    assert table.claim("key_1", "k2", "fp", "t", NOW, account="key_1", caps=caps).state == (
        "started"
    )


def test_the_counts_follow_releases_take_overs_and_prunes(db):
    table = capped(db)
    caps = Caps(rows=1, bytes=10**9)
    assert table.claim("key_1", "k", "fp", "t1", NOW, account="key_1", caps=caps).state == (
        "started"
    )
    table.release("key_1", "k", "t1")
    assert usage(db) == (0, 0)
    assert table.claim("key_1", "k", "fp", "t2", NOW, account="key_1", caps=caps).state == (
        "started"
    )
    later = NOW + LEASE_SECONDS + 1  # its request died: taken over, still one row
    assert table.claim("key_1", "k", "fp", "t3", later, account="key_1", caps=caps).state == (
        "started"
    )
    assert usage(db) == (1, claim_size("key_1", "k", "fp", "t3"))
    gone = later + RETENTION_SECONDS
    table.claim("key_2", "x", "fp", "t", gone, account="key_2", caps=caps)
    assert usage(db) == (0, 0)  # pruned by another account's claim


def test_rows_of_the_uncapped_table_move_over_to_their_accounts(db):
    db.execute(
        "CREATE TABLE idempotency (scope TEXT NOT NULL, idem_key TEXT NOT NULL,"
        " fingerprint TEXT NOT NULL, token TEXT NOT NULL, state TEXT NOT NULL,"
        " created REAL NOT NULL, expires REAL NOT NULL, lease_until REAL NOT NULL,"
        " status INTEGER, body TEXT, headers TEXT, image_key TEXT,"
        " PRIMARY KEY (scope, idem_key))"
    )
    for scope in ("key_1", "key_1/alice"):
        db.execute(
            "INSERT INTO idempotency VALUES"
            " (?, 'k', 'fp', 't', 'done', ?, ?, ?, 200, ?, '{}', NULL)",
            (scope, NOW, NOW + RETENTION_SECONDS, NOW + LEASE_SECONDS, ANSWER.body),
        )
    table = capped(db)
    assert usage(db)[0] == 2
    assert table.claim("key_1/alice", "k", "fp", "t2", NOW + 1).state == "done"
    assert not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'idempotency'").fetchall()
    capped(db)  # a second start finds nothing to move
    assert usage(db)[0] == 2
