"""Usage history (``GET /v1/usage?from=&to=``, ``GET /v1/admin/usage``) and usage events
(Analytics Engine on Workers, SQLite locally), on both runtimes."""

import sqlite3
import time
from datetime import date, timedelta

import pytest

from fluxgate.access.ledger import RETENTION_DAYS, Ledger
from fluxgate.listings.usage_events import BLOBS, DOUBLES, UsageEvent
from fluxgate.listings.usage_points import check_data_point, data_point

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.config import ADMIN_TOKEN
from ..support.polling import finished
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a lighthouse at dusk", square=512, steps=10)
COST = 10 * 1 * 0.00041  # one output tile, ten steps
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def today(clock) -> date:
    return date.fromisoformat(time.strftime("%Y-%m-%d", time.gmtime(clock())))


def usage(client, auth, **query):
    r = client.get("/v1/usage", params=query, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


def ok(client, auth, body):
    r = generate(client, auth, body)
    assert r.status_code == 200, r.text
    return r


# -- GET /v1/usage ---------------------------------------------------------------------------


def test_the_default_range_is_today_and_todays_fields_stay(client, auth, clock):
    ok(client, auth, {**BODY, "seed": 1})
    body = usage(client, auth)
    day = today(clock).isoformat()
    assert body["day"] == body["from"] == body["to"] == day
    assert body["days"] == [{"day": day, "spent_usd": pytest.approx(COST), "requests": 1}]
    assert body["spent_usd"] == pytest.approx(COST) and body["requests"] == 1
    for field in ("key_id", "daily_budget_usd", "remaining_usd", "resets_at"):
        assert field in body


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_spend_on_two_days_with_the_days_between_as_zeros(client, auth, clock):
    first = today(clock)
    ok(client, auth, {**BODY, "seed": 1})
    clock.advance(2 * 86400)
    ok(client, auth, {**BODY, "seed": 2})
    ok(client, auth, {**BODY, "seed": 3, "steps": 20})
    hit = ok(client, auth, {**BODY, "seed": 3, "steps": 20})  # a cache hit: free
    assert hit.headers["x-cache"] == "HIT"
    last = today(clock)
    assert (last - first).days == 2

    body = usage(client, auth, **{"from": (first - timedelta(days=1)).isoformat()})
    assert body["from"] == (first - timedelta(days=1)).isoformat()
    assert body["to"] == last.isoformat()  # from alone runs to today
    assert [(d["day"], d["requests"]) for d in body["days"]] == [
        ((first - timedelta(days=1)).isoformat(), 0),
        (first.isoformat(), 1),
        ((first + timedelta(days=1)).isoformat(), 0),
        (last.isoformat(), 2),
    ]
    spent = [d["spent_usd"] for d in body["days"]]
    assert spent == [0, pytest.approx(COST), 0, pytest.approx(3 * COST)]
    assert body["spent_usd"] == pytest.approx(3 * COST) and body["requests"] == 2  # today

    past = usage(client, auth, to=first.isoformat())  # to alone: that one day
    assert past["from"] == past["to"] == first.isoformat()
    assert past["days"] == [
        {"day": first.isoformat(), "spent_usd": pytest.approx(COST), "requests": 1}
    ]
    assert past["day"] == last.isoformat() and past["requests"] == 2  # today's, still


def test_cache_hits_are_free_in_the_history(client, auth):
    for _ in range(3):
        ok(client, auth, {**BODY, "seed": 7})
    assert usage(client, auth)["days"][0]["requests"] == 1


def test_a_year_is_the_longest_range(client, auth, clock):
    last = today(clock)
    body = usage(
        client, auth, **{"from": (last - timedelta(days=365)).isoformat(), "to": str(last)}
    )
    assert len(body["days"]) == 366
    assert body["days"][0]["day"] == (last - timedelta(days=365)).isoformat()
    assert body["days"][-1] == {"day": last.isoformat(), "spent_usd": 0, "requests": 0}


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"from": "2026-13-01"}, "from"),
        ({"from": "20260101"}, "from"),
        ({"from": "2026-1-01"}, "from"),
        ({"from": ""}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"to": "２０２６-01-01"}, "to"),  # full-width digits are not ASCII digits
        ({"to": "+1"}, "to"),
        ({"to": "TOMORROW"}, "to"),
        ({"from": "TOMORROW"}, "from"),
        ({"from": "TODAY", "to": "TODAY-1"}, "from"),
        ({"from": "TODAY-366"}, "from"),
    ],
)
def test_a_bad_range_is_a_400_naming_its_parameter(client, auth, clock, query, param):
    day = today(clock)
    words = {
        "TOMORROW": day + timedelta(days=1),
        "TODAY": day,
        "TODAY-1": day - timedelta(days=1),
        "TODAY-366": day - timedelta(days=366),
    }
    query = {k: str(words.get(v, v)) for k, v in query.items()}
    r = client.get("/v1/usage", params=query, headers=auth)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["param"] == param


def test_usage_needs_a_credential(client):
    assert client.get("/v1/usage", params={"from": "2026-01-01"}).status_code == 401


# -- GET /v1/admin/usage ---------------------------------------------------------------------


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_admin_usage_pages_through_every_key(client, clock):
    keys = {name: new_key(client, name) for name in ("alpha", "beta", "gamma")}
    ok(client, keys["alpha"], {**BODY, "seed": 1})
    ok(client, keys["alpha"], {**BODY, "seed": 1})  # a hit: free
    clock.advance(86400)
    ok(client, keys["alpha"], {**BODY, "seed": 2})
    ok(client, keys["gamma"], {**BODY, "seed": 3, "steps": 20})
    last = today(clock)
    first = last - timedelta(days=29)  # a 30-day chart

    rows, cursor, pages = [], None, 0
    while True:
        query = {"from": first.isoformat(), "to": last.isoformat(), "limit": "2"}
        if cursor:
            query["cursor"] = cursor
        r = client.get("/v1/admin/usage", params=query, headers=ADMIN)
        assert r.status_code == 200, r.text
        page = r.json()
        pages += 1
        assert set(page) == {"from", "to", "data", "has_more", "next_cursor"}
        assert page["from"] == first.isoformat() and page["to"] == last.isoformat()
        assert len(page["data"]) <= 2
        rows += page["data"]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        cursor = page["next_cursor"]
    assert pages == 2
    by_name = {row["name"]: row for row in rows}
    assert sorted(by_name) == ["alpha", "beta", "gamma"]
    assert [row["key_id"] for row in rows] == sorted(row["key_id"] for row in rows)
    for row in rows:
        assert set(row) == {"key_id", "name", "spent_usd", "requests", "days", "top_users"}
        assert len(row["days"]) == 30 and row["days"][0]["day"] == first.isoformat()
    alpha, beta, gamma = by_name["alpha"], by_name["beta"], by_name["gamma"]
    assert alpha["requests"] == 2 and alpha["spent_usd"] == pytest.approx(2 * COST)
    assert [d["requests"] for d in alpha["days"][-2:]] == [1, 1]
    assert beta["requests"] == 0 and beta["spent_usd"] == 0
    assert gamma["requests"] == 1 and gamma["spent_usd"] == pytest.approx(2 * COST)
    assert gamma["days"][-1] == {
        "day": last.isoformat(),
        "spent_usd": pytest.approx(2 * COST),
        "requests": 1,
    }

    one_day = client.get(
        "/v1/admin/usage", params={"day": str(first + timedelta(days=28))}, headers=ADMIN
    )
    assert one_day.status_code == 200
    day_rows = {row["name"]: row for row in one_day.json()["data"]}
    assert day_rows["alpha"]["requests"] == 1 and day_rows["gamma"]["requests"] == 0

    default = client.get("/v1/admin/usage", headers=ADMIN).json()  # today, every key
    assert default["from"] == default["to"] == last.isoformat()
    assert {row["name"]: row["requests"] for row in default["data"]} == {
        "alpha": 1,
        "beta": 0,
        "gamma": 1,
    }


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ({"day": "TODAY", "from": "TODAY"}, "day"),
        ({"day": "2026-02-30"}, "day"),
        ({"day": "TOMORROW"}, "day"),
        ({"from": "TODAY-92"}, "from"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
    ],
)
def test_admin_usage_refuses_bad_queries(client, clock, query, param):
    day = today(clock)
    words = {
        "TOMORROW": day + timedelta(days=1),
        "TODAY": day,
        "TODAY-92": day - timedelta(days=92),
    }
    new_key(client, "one")
    query = {k: str(words.get(v, v)) for k, v in query.items()}
    r = client.get("/v1/admin/usage", params=query, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_admin_usage_is_for_admins_only(client, auth):
    r = client.get("/v1/admin/usage")
    assert r.status_code == 401 and r.json()["error"]["code"] == "missing_admin_token"
    r = client.get("/v1/admin/usage", headers={"Authorization": "Bearer not-the-admin-token"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_admin_token"
    r = client.get("/v1/admin/usage", headers=auth)  # an API key without the admin scope
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    admin_key = new_key(client, "ops", scopes=["admin"])
    assert client.get("/v1/admin/usage", headers=admin_key).status_code == 200


# -- usage events ----------------------------------------------------------------------------


@pytest.mark.runtimes("local")
def test_every_generation_served_records_a_usage_event(client, auth, usage_events):
    ok(client, auth, {**BODY, "seed": 1, "user": "user-42"})  # a miss, for an end user
    ok(client, auth, {**BODY, "seed": 1, "user": "user-42"})  # its hit
    job = generate(client, auth, {**BODY, "seed": 2, "async": True})  # a job's run
    assert job.status_code == 202, job.text
    assert finished(client, auth, job.json())["status"] == "succeeded"
    hit_job = generate(client, auth, {**BODY, "seed": 2, "async": True})  # a hit at submission
    assert hit_job.json()["status"] == "succeeded"

    events = usage_events.events()
    assert [(e["kind"], e["cache"]) for e in events] == [
        ("sync", "MISS"),
        ("sync", "HIT"),
        ("async", "MISS"),
        ("async", "HIT"),
    ]
    key_id = usage(client, auth)["key_id"]
    assert {e["key_id"] for e in events} == {key_id}
    assert [e["end_user"] for e in events] == ["user-42", "user-42", "", ""]
    assert [e["charged_usd"] for e in events] == [pytest.approx(COST), 0, pytest.approx(COST), 0]
    assert all(e["estimated_usd"] == pytest.approx(COST) for e in events)
    miss = events[0]
    assert (miss["width"], miss["height"], miss["steps"], miss["reference_images"]) == (
        512,
        512,
        10,
        0,
    )
    assert miss["generation_id"].startswith("img_") and miss["model"]
    assert events[1]["generation_id"] == miss["generation_id"]  # the same key: its own record
    assert all(e["duration_ms"] >= 0 for e in events)


@pytest.mark.runtimes("local")
def test_a_failing_event_store_never_fails_the_request(client, auth, usage_events):
    usage_events.fail()
    r = ok(client, auth, {**BODY, "seed": 1})
    assert r.headers["x-cache"] == "MISS"
    assert ok(client, auth, {**BODY, "seed": 1}).headers["x-cache"] == "HIT"
    assert usage_events.events() == []
    assert usage(client, auth)["requests"] == 1  # the ledger is not the event store


# -- white-box: the ledger's history and retention, the event's data point ------------------


def test_the_ledger_reads_ranges_and_ages_out_old_days():
    db = sqlite3.connect(":memory:", isolation_level=None)
    ledger = Ledger(lambda sql, params: db.execute(sql, tuple(params)).fetchall())
    start = date(2026, 1, 1)
    for offset in (0, 1, 5):
        ledger.reserve("key", (start + timedelta(days=offset)).isoformat(), 7, 10**9)
    ledger.reserve("other", start.isoformat(), 9, 10**9)
    history = ledger.history("key", "2026-01-01", "2026-01-05")
    assert [(d.day, d.micro_usd, d.requests) for d in history] == [
        ("2026-01-01", 7, 1),
        ("2026-01-02", 7, 1),
    ]
    later = start + timedelta(days=RETENTION_DAYS + 1)  # the day's first reservation prunes
    ledger.reserve("key", later.isoformat(), 7, 10**9)
    kept = [d.day for d in ledger.history("key", "2000-01-01", "2100-01-01")]
    # the first day is more than RETENTION_DAYS before `later`: gone; the rest stays
    assert kept == ["2026-01-02", "2026-01-06", later.isoformat()]
    assert ledger.history("other", "2026-01-01", "2026-01-01")  # another account's rows stay
    ledger.reserve("key", "day", 7, 10**9)  # not a calendar day: nothing to age out against


def test_an_event_is_one_data_point_in_the_documented_layout():
    event = UsageEvent(
        time=0.0,
        key_id="key_0123456789abcdef",
        end_user=None,
        model="@cf/black-forest-labs/flux-2-dev",
        kind="sync",
        cache="MISS",
        generation_id="img_" + "0" * 24,
        width=1024,
        height=768,
        steps=25,
        reference_images=1,
        charged_micro_usd=41_000,
        estimated_micro_usd=41_000,
        duration_ms=12.5,
    )
    point = data_point(event)
    assert point["indexes"] == ["key_0123456789abcdef"]
    assert dict(zip(BLOBS, point["blobs"], strict=True))["end_user"] == ""
    assert dict(zip(DOUBLES, point["doubles"], strict=True))["charged_usd"] == 0.041
    assert point["doubles"][0] == 0.041  # double1: what the SQL examples sum
    check_data_point(point)
    with pytest.raises(ValueError, match="index"):
        check_data_point({**point, "indexes": ["k" * 97]})
    with pytest.raises(ValueError, match="blobs"):
        check_data_point({**point, "blobs": ["x" * 16_001]})
