"""Daily spend budgets: charged before the model call, refunded on failure, exact under
concurrency."""

import asyncio
import time

import pytest

from ..support.admin import new_key, put_policy
from ..support.bodies import generate, generation
from ..support.runtimes import FAILS_STORE, MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a lighthouse", square=512, steps=10)
COST = 10 * 1 * 0.00041  # one output tile, ten steps


def budget(client, usd):
    put_policy(
        client,
        tiers={"standard": {"daily_budget_usd": usd}},
        rate_limits={"standard": {"limit": 10_000, "period": 60}},
    )


def test_usage_reports_spend_and_remaining(client, auth, clock):
    budget(client, 1.0)
    generate(client, auth, {**BODY, "seed": 1})
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["spent_usd"] == pytest.approx(COST)
    assert usage["requests"] == 1
    assert usage["daily_budget_usd"] == 1.0
    assert usage["remaining_usd"] == pytest.approx(1.0 - COST)
    assert usage["day"] == time.strftime("%Y-%m-%d", time.gmtime(clock()))  # the clock's UTC day
    assert usage["resets_at"] % 86400 == 0 and usage["resets_at"] > clock()


def test_the_request_that_would_cross_the_budget_is_refused(client, auth, ai):
    budget(client, COST * 2.5)
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, auth, {**BODY, "seed": 2}).status_code == 200
    r = generate(client, auth, {**BODY, "seed": 3})
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded"
    assert int(r.headers["retry-after"]) > 0
    assert ai.calls == 2
    # a cheaper one still fits
    assert generate(client, auth, {**BODY, "seed": 4, "steps": 2}).status_code == 200


def test_cache_hits_are_free(client, auth):
    budget(client, COST)
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    for _ in range(3):
        r = generate(client, auth, {**BODY, "seed": 1})
        assert r.status_code == 200 and r.json()["cost"]["charged_usd"] == 0
    assert client.get("/v1/usage", headers=auth).json()["requests"] == 1


def test_a_failed_model_call_is_refunded(client, auth, ai):
    budget(client, COST)
    ai.fail_next("3040: Capacity temporarily exceeded")
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 503
    assert client.get("/v1/usage", headers=auth).json()["spent_usd"] == 0
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_a_failed_storage_write_is_refunded(client, auth, storage):
    budget(client, COST)
    storage.fail(object_writes=True)
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 503
    assert client.get("/v1/usage", headers=auth).json()["requests"] == 0


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_budgets_reset_each_utc_day(client, auth, clock):
    budget(client, COST)
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, auth, {**BODY, "seed": 2}).status_code == 429
    clock.advance(86400)
    assert generate(client, auth, {**BODY, "seed": 3}).status_code == 200


def test_a_key_override_replaces_the_tier_budget(client):
    budget(client, 0.0)
    rich = new_key(client, "rich", overrides={"daily_budget_usd": 1.0})
    assert generate(client, rich, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, new_key(client, "poor"), {**BODY, "seed": 2}).status_code == 429


def test_an_unlimited_tier(client, auth):
    put_policy(client, tiers={"standard": {"daily_budget_usd": None}})
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    assert client.get("/v1/usage", headers=auth).json()["remaining_usd"] is None


@pytest.mark.anyio
async def test_twenty_concurrent_requests_against_a_budget_for_ten_admit_exactly_ten(
    client, async_client, ai
):
    budget(client, COST * 10)
    auth = new_key(client, "concurrent")
    ai.latency = 0.05  # every admitted request holds its reservation while the model runs
    async with async_client() as http:
        responses = await asyncio.gather(
            *[
                http.post("/v1/images/generations", json={**BODY, "seed": seed}, headers=auth)
                for seed in range(20)
            ]
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 10 and statuses.count(429) == 10, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {
        "budget_exceeded"
    }
    assert ai.calls == 10
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["requests"] == 10 and usage["spent_usd"] == pytest.approx(COST * 10)


def test_two_processes_sharing_the_ledger_file_never_overspend(tmp_path):
    """The local ledger is transactional across processes (BEGIN IMMEDIATE on SQLite)."""
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from fluxgate.local.ledger_sqlite import SqliteLedger\n"
        "async def main():\n"
        "    ledger = SqliteLedger(sys.argv[1])\n"
        "    ok = 0\n"
        "    for _ in range(200):\n"
        "        ok += (await ledger.reserve('key', 'day', 7, 700)).accepted\n"
        "    print(ok)\n"
        "asyncio.run(main())\n"
    )
    path = str(tmp_path / "shared.sqlite3")
    procs = [
        subprocess.Popen([sys.executable, "-c", script, path], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    admitted = sum(int(p.communicate(timeout=60)[0]) for p in procs)
    assert admitted == 100
