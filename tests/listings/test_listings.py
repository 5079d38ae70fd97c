"""GET /v1/images, GET /v1/jobs and GET /v1/admin/keys/{id}/images: the caller's
generations and jobs, newest first, a page at a time (the per-key catalog)."""

import base64
import logging
import sqlite3

import pytest
from fastapi.testclient import TestClient

from fluxgate.api.app import create_app
from fluxgate.listings.catalog import (
    IMAGE,
    JOB,
    CatalogTable,
    Entry,
    Position,
    decode_cursor,
    encode_cursor,
)

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.clock import just_now
from ..support.polling import finished, wait_for
from ..support.runtimes import HOLDS_QUEUE

pytestmark = pytest.mark.runtimes("local", "worker")

ASYNC = {"Prefer": "respond-async"}
IMAGE_FIELDS = {
    "id",
    "object",
    "created",
    "model",
    "width",
    "height",
    "seed",
    "steps",
    "content_type",
    "bytes",
    "user",
    "url",
    "expires_at",
    "output_moderation",
}


def made(client, auth, prompt, **fields):
    r = generate(client, auth, generation(prompt, square=256, steps=2, **fields))
    assert r.status_code == 200, r.text
    return r.json()


def listed(client, auth, path="/v1/images", **params):
    r = client.get(path, headers=auth, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and r.headers["cache-control"] == "no-store"
    return body


def ids(body):
    return [item["id"] for item in body["data"]]


def settled(client, auth, count):
    """The job listing once ``count`` jobs are listed as finished: the consumer updates a
    job's row right after its record, so a poller may see the record first."""

    def done():
        body = listed(client, auth, "/v1/jobs", limit=100)
        final = [i for i in body["data"] if i["status"] in ("succeeded", "failed")]
        return body if len(final) >= count else None

    return wait_for(done)


def walk(client, auth, path="/v1/images", limit=3):
    """Every page of a listing, following ``next_cursor``."""
    pages, params = [], {"limit": limit}
    while True:
        page = listed(client, auth, path, **params)
        pages.append(page)
        if not page["has_more"]:
            assert page["next_cursor"] is None
            return pages
        params["cursor"] = page["next_cursor"]


def mint(client, auth, subject):
    r = client.post("/v1/tokens", json={"subject": subject}, headers=auth)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_images_are_listed_newest_first_with_fresh_urls(client, auth, clock):
    first = made(client, auth, "a boat")
    clock.advance(1.1)  # the next second
    second = made(client, auth, "a hat")
    third = made(client, auth, "a cat")  # the same second as the second: still newer
    body = listed(client, auth)
    assert ids(body) == [third["id"], second["id"], first["id"]]
    assert body["has_more"] is False and body["next_cursor"] is None
    item = body["data"][2]
    assert set(item) == IMAGE_FIELDS
    assert item["object"] == "image" and item["user"] is None
    for name in ("created", "model", "width", "height", "seed", "steps", "content_type", "bytes"):
        assert item[name] == first[name], name
    assert item["expires_at"] in just_now(clock, 3600)
    assert client.get(item["url"]).status_code == 200


def test_a_cursor_walks_every_image_exactly_once(client, auth, clock):
    made_ids = []
    for n in range(7):
        made_ids.append(made(client, auth, f"a tree number {n}")["id"])
        if n % 3 == 0:
            clock.advance(1.1)  # the next second
    pages = walk(client, auth, limit=3)
    assert [len(p["data"]) for p in pages] == [3, 3, 1]
    assert [p["has_more"] for p in pages] == [True, True, False]
    assert [i for p in pages for i in ids(p)] == made_ids[::-1]
    assert ids(listed(client, auth)) == made_ids[::-1]  # default limit 20


def test_end_users_see_their_own_and_the_key_sees_all(client, auth):
    own = made(client, auth, "the key's own")
    token = mint(client, auth, "user-42")
    by_token = made(client, token, "a token's")
    by_user = made(client, auth, "an OpenAI user's", user="user-7")

    everything = listed(client, auth)
    assert ids(everything) == [by_user["id"], by_token["id"], own["id"]]
    assert [i["user"] for i in everything["data"]] == ["user-7", "user-42", None]
    mine = listed(client, token)
    assert ids(mine) == [by_token["id"]] and mine["data"][0]["user"] == "user-42"
    assert ids(listed(client, auth, user="user-7")) == [by_user["id"]]
    assert ids(listed(client, token, user="user-7")) == [by_token["id"]]  # the token wins
    other = new_key(client, "other")
    assert listed(client, other)["data"] == []
    assert listed(client, mint(client, other, "user-42"))["data"] == []


def test_cache_hits_are_not_listed_again(client, auth):
    first = made(client, auth, "a paper crane")
    hit = made(client, auth, "a paper crane")
    assert hit["cached"] is True and hit["id"] == first["id"]
    assert ids(listed(client, auth)) == [first["id"]]


@pytest.mark.settings(cache_scope="global")
def test_a_hit_on_another_keys_image_is_the_callers_own_generation(client, auth):
    first = made(client, auth, "a shared crane")
    other = new_key(client, "other")
    hit = made(client, other, "a shared crane")
    assert hit["cached"] is True and hit["id"] != first["id"]
    assert ids(listed(client, other)) == [hit["id"]]
    assert ids(listed(client, auth)) == [first["id"]]


@pytest.mark.runtimes("local", reason=HOLDS_QUEUE)
def test_jobs_are_listed_with_their_current_status(client, auth, ai, jobs):
    jobs.pause()
    ok = generate(client, auth, generation("a slow sunset", square=256, steps=2), headers=ASYNC)
    assert ok.status_code == 202, ok.text
    listing = listed(client, auth, "/v1/jobs")
    assert ids(listing) == [ok.json()["id"]] and listing["data"][0]["status"] == "queued"
    jobs.resume()
    done = finished(client, auth, ok.json())
    assert done["status"] == "succeeded"

    ai.fail_next("5006: Error: bad input")
    bad = generate(client, auth, generation("a broken sunset", square=256, steps=2), headers=ASYNC)
    assert finished(client, auth, bad.json())["status"] == "failed"

    failed_item, ok_item = settled(client, auth, 2)["data"]
    assert ok_item["id"] == ok.json()["id"] and ok_item["status"] == "succeeded"
    assert ok_item["object"] == "image.job" and ok_item["user"] is None
    assert ok_item["status_url"] == ok.json()["status_url"]
    assert ok_item["image_id"] == done["result"]["id"] and ok_item["error"] is None
    assert failed_item["status"] == "failed" and failed_item["image_id"] is None
    assert failed_item["error"]["code"] == "upstream_invalid_input"
    # the job's image is listed with the others
    assert ids(listed(client, auth)) == [done["result"]["id"]]


def test_jobs_of_end_users_and_their_pages(client, auth):
    token = mint(client, auth, "user-42")
    submitted = []
    for n, who in enumerate([auth, token, auth, token]):
        body = generation(f"a slow sunset {n}", square=256, steps=2)
        r = generate(client, who, body, headers=ASYNC)
        assert r.status_code == 202, r.text
        submitted.append(r.json()["id"])
    for job_id in submitted:
        finished(client, auth, job_id)
    settled(client, auth, 4)
    pages = walk(client, auth, "/v1/jobs", limit=3)
    assert [i for p in pages for i in ids(p)] == submitted[::-1]
    theirs = listed(client, token, "/v1/jobs")
    assert ids(theirs) == [submitted[3], submitted[1]]
    assert {i["user"] for i in theirs["data"]} == {"user-42"}
    assert listed(client, new_key(client, "other"), "/v1/jobs")["data"] == []


def test_admin_lists_any_keys_images(client, admin):
    r = client.post("/v1/admin/keys", json={"name": "gallery"}, headers=admin)
    key_id, auth = r.json()["id"], {"Authorization": f"Bearer {r.json()['key']}"}
    own = made(client, auth, "the key's own")
    theirs = made(client, mint(client, auth, "user-42"), "a token's")
    path = f"/v1/admin/keys/{key_id}/images"
    body = listed(client, admin, path)
    assert ids(body) == [theirs["id"], own["id"]]
    assert set(body["data"][0]) == IMAGE_FIELDS
    pages = walk(client, admin, path, limit=1)
    assert [i for p in pages for i in ids(p)] == [theirs["id"], own["id"]]

    unknown = client.get("/v1/admin/keys/key_0000000000000000/images", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    anonymous = client.get(path)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "missing_admin_token"
    assert client.get(path, headers=auth).status_code == 403  # a key without `admin`


@pytest.mark.parametrize("path", ["/v1/images", "/v1/jobs"])
def test_a_bad_cursor_or_limit_is_400_naming_it(client, auth, path):
    made(client, auth, "a boat")
    made(client, auth, "a hat")
    other_listing = "/v1/jobs" if path == "/v1/images" else "/v1/images"
    kind = IMAGE if path == "/v1/images" else JOB
    foreign = encode_cursor(JOB if path == "/v1/images" else IMAGE, Position(1, 1))
    for cursor in (
        "nope!",
        "x" * 65,
        base64.urlsafe_b64encode(b"image.1.x").decode(),
        base64.urlsafe_b64encode(b"\xff\xfe\xfd\xfc").decode(),
        foreign,
        # well formed, but positions beyond what SQLite and the Durable Object RPC hold
        base64.urlsafe_b64encode(f"{kind}.999999999999999.9999999999999999999".encode())
        .decode()
        .rstrip("="),
        encode_cursor(kind, Position(1, 2**53)),
        encode_cursor(kind, Position(2**53, 1)),
    ):
        r = client.get(path, headers=auth, params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["param"] == "cursor"
    for limit in ("0", "101", "-1", "ten", "1.5"):
        r = client.get(path, headers=auth, params={"limit": limit})
        assert r.status_code == 400, (limit, r.text)
        assert r.json()["error"]["code"] == "invalid_request"
        assert r.json()["error"]["param"] == "limit"
    assert client.get(other_listing, headers=auth, params={"limit": "1"}).status_code == 200
    # The largest position a cursor may hold is served (everything before it), not a 500: on
    # Workers it crosses the RPC as a BigInt and is bound into SQLite as a double.
    largest = encode_cursor(kind, Position(2**53 - 1, 2**53 - 1))
    r = client.get(path, headers=auth, params={"cursor": largest})
    assert r.status_code == 200, r.text
    everything = client.get(path, headers=auth).json()["data"]
    assert [item["id"] for item in r.json()["data"]] == [item["id"] for item in everything]
    r = client.get(path, headers=auth, params={"user": "no spaces"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"


def test_scopes_and_credentials(client):
    generate_only = new_key(client, "writer", scopes=["images:generate"])
    r = client.get("/v1/images", headers=generate_only)
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    assert client.get("/v1/jobs", headers=generate_only).status_code == 200  # as GET /v1/jobs/{id}
    assert client.get("/v1/images").status_code == 401
    assert client.get("/v1/jobs").status_code == 401


# -- without a catalog, and when it fails (white-box: the local runtime's ports) ------------


class BrokenCatalog:
    async def put(self, entry):
        raise OSError("catalog down")

    async def page(self, *args):
        raise OSError("catalog down")


def test_without_a_catalog_listings_answer_501_and_generations_work(make_runtime, admin):
    runtime = make_runtime(catalog=None)
    with TestClient(create_app(lambda _request: runtime.gateway)) as client:
        r = client.post("/v1/admin/keys", json={"name": "k"}, headers=admin)
        key_id, auth = r.json()["id"], {"Authorization": f"Bearer {r.json()['key']}"}
        made(client, auth, "a boat")
        for path in ("/v1/images", "/v1/jobs", f"/v1/admin/keys/{key_id}/images"):
            r = client.get(path, headers=admin if "admin" in path else auth)
            assert r.status_code == 501, r.text
            assert r.json()["error"]["code"] == "listing_unavailable"


def test_a_catalog_failure_never_fails_a_paid_generation(make_runtime, caplog):
    runtime = make_runtime(catalog=BrokenCatalog())
    caplog.set_level(logging.ERROR, logger="fluxgate.catalog")
    with TestClient(create_app(lambda _request: runtime.gateway)) as client:
        auth = new_key(client)
        body = made(client, auth, "a boat")
        assert client.get(f"/v1/images/{body['id']}", headers=auth).status_code == 200
        assert client.get(body["data"][0]["url"]).status_code == 200
    assert any("catalog write for image" in r.getMessage() for r in caplog.records)


# -- the catalog's SQL ----------------------------------------------------------------------


def table(**limits):
    db = sqlite3.connect(":memory:", isolation_level=None)
    return CatalogTable(lambda sql, params: db.execute(sql, tuple(params)).fetchall(), **limits)


def image(n, account="key_a", user=None, created=None):
    created = 1_000 + n if created is None else created
    return Entry(IMAGE, f"img_{n:024x}", account, user, created, created, None, {"n": n})


def job(n, status, updated, account="key_a"):
    return Entry(JOB, f"job_{n:024x}", account, None, 1_000, updated, status, {"s": status})


def test_catalog_pages_by_account_and_user():
    t = table()
    for n in range(5):
        t.put(image(n, user="u1" if n % 2 else None))
    t.put(image(9, account="key_b"))
    page = t.page("key_a", IMAGE, None, 2, None)
    assert [e.summary["n"] for e in page.entries] == [4, 3] and page.next is not None
    page = t.page("key_a", IMAGE, None, 2, page.next)
    assert [e.summary["n"] for e in page.entries] == [2, 1]
    page = t.page("key_a", IMAGE, None, 2, page.next)
    assert [e.summary["n"] for e in page.entries] == [0] and page.next is None
    assert [e.summary["n"] for e in t.page("key_a", IMAGE, "u1", 10, None).entries] == [3, 1]
    assert [e.summary["n"] for e in t.page("key_b", IMAGE, None, 10, None).entries] == [9]
    assert t.page("key_a", JOB, None, 10, None).entries == []


def test_catalog_job_rows_only_move_forward():
    t = table()
    assert t.put(job(1, "queued", 1_000))
    assert t.put(job(1, "running", 1_001))
    assert not t.put(job(1, "queued", 1_000))  # an older state arriving late
    assert t.put(job(1, "succeeded", 1_001))
    assert not t.put(job(1, "running", 1_002))  # nothing leaves a final status
    assert not t.put(job(1, "failed", 1_003))
    assert not t.put(job(1, "queued", 1_005, account="key_b"))  # another key, same id
    (entry,) = t.page("key_a", JOB, None, 10, None).entries
    assert entry.status == "succeeded" and entry.summary == {"s": "succeeded"}
    assert t.page("key_b", JOB, None, 10, None).entries == []


def test_catalog_retention():
    t = table(keep=3, max_age_days=1, prune_every=1)
    for n in range(6):
        t.put(image(n))
    assert [e.summary["n"] for e in t.page("key_a", IMAGE, None, 10, None).entries] == [5, 4, 3]
    t.put(image(7, created=1_000 + 86_400 + 4))  # a day after n=3: 3 ages out
    assert [e.summary["n"] for e in t.page("key_a", IMAGE, None, 10, None).entries] == [7, 5, 4]


def test_cursors_round_trip_and_refuse_anything_else():
    position = Position(1_800_000_000, 42)
    assert decode_cursor(IMAGE, encode_cursor(IMAGE, position)) == position
    for bad in (
        encode_cursor(JOB, position),
        "",
        "====",
        base64.urlsafe_b64encode(b"image.01.2").decode().rstrip("="),
        base64.urlsafe_b64encode(b"image.1.0").decode().rstrip("="),
        base64.urlsafe_b64encode(b"image.-1.2").decode().rstrip("="),
        base64.urlsafe_b64encode(b"image.999999999999999.9999999999999999999").decode().rstrip("="),
        encode_cursor(IMAGE, Position(1, 2**53)),  # beyond JS's safe integers
        encode_cursor(IMAGE, Position(2**53, 1)),
        encode_cursor(IMAGE, Position(1, 2**63)),  # beyond SQLite's INTEGER
    ):
        with pytest.raises(ValueError):
            decode_cursor(IMAGE, bad)
    largest = Position(2**53 - 1, 2**53 - 1)
    assert decode_cursor(JOB, encode_cursor(JOB, largest)) == largest
