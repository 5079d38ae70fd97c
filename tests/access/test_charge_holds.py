"""A synchronous request's charge is a hold on a lease: it stands once the image is kept (or
made and refused), it is refunded when the request fails, and a hold nobody settled (its
request died) is refunded when its lease lapses. The crash itself is in
``test_crash_recovery.py``; here, what a lease does to requests that lived, and the ledger's
rules one by one."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import pytest

from fluxgate.access.ledger import Ledger

from ..support.admin import put_policy
from ..support.bodies import generate, generation

LEASE = 1  # GENERATION_LEASE_SECONDS of these tests: a second, then the hold would lapse
BODY = generation("a lighthouse", square=256, steps=4)

pytestmark = [
    pytest.mark.settings(generation_lease_seconds=LEASE),
    pytest.mark.runtimes("local", "worker"),
]


def spent(client, auth) -> tuple[float, int]:
    usage = client.get("/v1/usage", headers=auth).json()
    return usage["spent_usd"], usage["requests"]


def test_a_kept_image_stays_charged_after_the_lease(client, auth):
    charged = generate(client, auth, BODY).json()["cost"]["charged_usd"]
    time.sleep(LEASE + 0.5)
    assert spent(client, auth) == (pytest.approx(charged), 1)


def test_an_image_refused_by_output_moderation_stays_charged_after_the_lease(client, auth, scout):
    put_policy(client, tiers={"standard": {"output_moderation": "block"}})
    scout.verdicts = [{"safe": False, "categories": ["S1"]}]
    assert generate(client, auth, BODY).status_code == 422
    time.sleep(LEASE + 0.5)
    assert spent(client, auth)[1] == 1  # the model ran: the charge stands


def test_a_failed_generation_is_refunded_at_once_and_only_once(client, auth, ai):
    ai.fail_next("3040: Capacity temporarily exceeded")
    assert generate(client, auth, BODY).status_code == 503
    assert spent(client, auth) == (0, 0)
    time.sleep(LEASE + 0.5)  # nothing left to lapse: no second refund
    charged = generate(client, auth, {**BODY, "seed": 2}).json()["cost"]["charged_usd"]
    assert spent(client, auth) == (pytest.approx(charged), 1)


# -- the ledger's holds, one rule at a time -------------------------------------------------

DAY, ACCOUNT, LIMIT = "2026-12-06", "key_a", 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def now() -> Clock:
    return Clock()


@pytest.fixture
def book(now: Clock) -> Iterator[Ledger]:
    """The ledger on an in-memory SQLite database, on a clock the test moves."""
    db = sqlite3.connect(":memory:", isolation_level=None)
    yield Ledger(lambda sql, params: db.execute(sql, tuple(params)).fetchall(), now)
    db.close()


def hold(book: Ledger, name: str, micro_usd: int = 100, lease: float = 10) -> bool:
    return book.reserve(ACCOUNT, DAY, micro_usd, LIMIT, name, lease).accepted


def test_an_unsettled_hold_is_refunded_once_its_lease_lapses(book, now):
    assert hold(book, "req:a")
    now.now += 9.9
    assert book.usage(ACCOUNT, DAY).micro_usd == 100
    now.now += 0.1
    assert book.usage(ACCOUNT, DAY).micro_usd == 0
    assert book.usage(ACCOUNT, DAY).micro_usd == 0  # refunded once, not again


def test_a_settled_hold_stands(book, now):
    assert hold(book, "req:a")
    assert book.settle(ACCOUNT, "req:a")
    now.now += 60
    assert book.usage(ACCOUNT, DAY).micro_usd == 100


def test_a_released_hold_is_refunded_once(book):
    assert hold(book, "req:a")
    assert hold(book, "req:b")
    book.release(ACCOUNT, "req:a")
    book.release(ACCOUNT, "req:a")
    assert book.usage(ACCOUNT, DAY).micro_usd == 100


def test_holding_the_same_name_again_takes_it_over_without_a_second_charge(book, now):
    assert hold(book, "idem:x")
    now.now += 8
    assert hold(book, "idem:x")  # a retry of the request that died: its lease renewed
    assert book.usage(ACCOUNT, DAY).micro_usd == 100
    now.now += 5  # past the first lease, within the renewed one
    assert book.usage(ACCOUNT, DAY).micro_usd == 100
    assert book.settle(ACCOUNT, "idem:x")


def test_a_hold_past_its_lease_is_refunded_before_a_retry_charges_again(book, now):
    assert hold(book, "idem:x")
    now.now += 11
    assert hold(book, "idem:x")
    assert book.usage(ACCOUNT, DAY).micro_usd == 100  # refunded, then charged: once


def test_a_hold_refunded_for_lapsing_cannot_be_settled_afterwards(book, now):
    assert hold(book, "req:a")
    now.now += 11
    assert book.usage(ACCOUNT, DAY).micro_usd == 0  # the read refunds it
    assert not book.settle(ACCOUNT, "req:a")  # a request that outlived its lease: free
    assert book.usage(ACCOUNT, DAY).micro_usd == 0


def test_a_refused_hold_holds_nothing(book, now):
    assert not hold(book, "req:big", micro_usd=LIMIT + 1)
    assert hold(book, "req:a")
    now.now += 11
    assert book.usage(ACCOUNT, DAY).micro_usd == 0


def test_lapsed_holds_are_refunded_only_for_their_own_account(book, now):
    assert hold(book, "req:a")
    assert book.reserve("key_b", DAY, 50, LIMIT, "req:b", 10).accepted
    now.now += 11
    assert book.usage("key_b", DAY).micro_usd == 0
    assert book.history(ACCOUNT, DAY, DAY)[0].micro_usd == 0  # a history read lapses too
