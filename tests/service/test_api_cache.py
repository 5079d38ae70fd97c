"""The KV cache: identical requests are paid for once."""

import pytest

from fluxgate.store.cache_keys import CacheMode

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

PROMPT = generation("a red fox in snow", square=512, steps=4)


def test_an_identical_request_is_a_hit_without_a_model_call(client, auth, ai):
    first = generate(client, auth, PROMPT).json()
    second = generate(client, auth, PROMPT)
    assert second.headers["x-cache"] == "HIT"
    body = second.json()
    assert ai.calls == 1
    assert body["cached"] is True and body["cost"]["charged_usd"] == 0.0
    assert body["cost"]["estimated_usd"] == first["cost"]["estimated_usd"]
    assert (body["id"], body["sha256"], body["seed"]) == (
        first["id"],
        first["sha256"],
        first["seed"],
    )
    assert client.get(body["data"][0]["url"]).status_code == 200


def test_a_seedless_request_hits_and_returns_the_first_seed(client, auth, ai):
    seed = generate(client, auth, PROMPT).json()["seed"]
    assert generate(client, auth, PROMPT).json()["seed"] == seed and ai.calls == 1


def test_equivalent_prompts_share_an_entry(client, auth, ai):
    generate(client, auth, PROMPT)
    r = generate(client, auth, {**PROMPT, "prompt": "  a red   fox in\tsnow "})
    assert r.headers["x-cache"] == "HIT"


@pytest.mark.parametrize(
    "change",
    [{"seed": 7}, {"steps": 5}, {"width": 768}, {"guidance": 2.5}, {"prompt": "a red fox"}],
)
def test_any_parameter_change_is_a_miss(client, auth, ai, change):
    generate(client, auth, PROMPT)
    assert generate(client, auth, {**PROMPT, **change}).headers["x-cache"] == "MISS"


def test_b64_json_is_served_from_cache_too(client, auth, ai):
    generate(client, auth, PROMPT)
    r = generate(client, auth, {**PROMPT, "response_format": "b64_json"})
    assert r.headers["x-cache"] == "HIT" and "b64_json" in r.json()["data"][0]


def test_the_cache_is_per_key_by_default(client, auth, ai):
    generate(client, auth, PROMPT)
    other = new_key(client, "other")
    assert generate(client, other, PROMPT).headers["x-cache"] == "MISS" and ai.calls == 2


@pytest.mark.settings(cache_scope="global")
def test_a_global_cache_is_shared_but_records_stay_owned(client, auth, ai):
    mine = generate(client, auth, PROMPT).json()
    other = new_key(client, "other")
    theirs = generate(client, other, PROMPT)
    assert theirs.headers["x-cache"] == "HIT" and ai.calls == 1
    assert theirs.json()["id"] != mine["id"] and theirs.json()["sha256"] == mine["sha256"]
    assert client.get(f"/v1/images/{theirs.json()['id']}", headers=other).status_code == 200
    assert client.get(f"/v1/images/{mine['id']}", headers=other).status_code == 404


def test_no_cache_bypasses_and_refreshes(client, auth, ai):
    first = generate(client, auth, PROMPT).json()
    refreshed = generate(client, auth, PROMPT, headers={"Cache-Control": "no-cache"})
    assert refreshed.headers["x-cache"] == "BYPASS" and ai.calls == 2
    after = generate(client, auth, PROMPT)
    assert after.headers["x-cache"] == "HIT"
    assert after.json()["id"] == refreshed.json()["id"] != first["id"]


def test_no_store_neither_reads_nor_writes(client, auth, ai):
    no_store = {"Cache-Control": "no-store"}
    r = generate(client, auth, PROMPT, headers=no_store)
    assert r.headers["x-cache"] == "BYPASS"
    assert generate(client, auth, PROMPT).headers["x-cache"] == "MISS" and ai.calls == 2
    assert generate(client, auth, PROMPT, headers=no_store).headers["x-cache"] == "BYPASS"
    assert ai.calls == 3


def object_key(url):
    return url.split("/v1/files/")[1].split("?")[0]


def test_an_entry_whose_object_is_gone_is_repaired_by_its_first_failed_download(
    client, auth, ai, storage
):
    first = generate(client, auth, PROMPT).json()
    storage.delete_object(object_key(first["data"][0]["url"]))  # someone emptied the bucket
    # The hit path does not touch R2 (one KV read, one HMAC): the URL it signs is dead...
    stale = generate(client, auth, PROMPT)
    assert stale.headers["x-cache"] == "HIT"
    missing = client.get(stale.json()["data"][0]["url"])
    assert missing.status_code == 404
    # ...and that 404 dropped the entry named in the signed URL: the next request repairs.
    repaired = generate(client, auth, PROMPT)
    assert repaired.headers["x-cache"] == "MISS" and ai.calls == 2
    assert client.get(repaired.json()["data"][0]["url"]).status_code == 200
    assert generate(client, auth, PROMPT).headers["x-cache"] == "HIT" and ai.calls == 2


def test_a_b64_json_hit_whose_object_is_gone_is_a_miss(client, auth, ai, storage):
    first = generate(client, auth, PROMPT).json()
    storage.delete_object(object_key(first["data"][0]["url"]))
    r = generate(client, auth, {**PROMPT, "response_format": "b64_json"})
    assert r.headers["x-cache"] == "MISS" and ai.calls == 2 and "b64_json" in r.json()["data"][0]


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
@pytest.mark.settings(cache_ttl_seconds=60)
def test_cache_entries_expire_after_the_ttl(client, auth, ai, clock):
    generate(client, auth, PROMPT)
    clock.advance(61)
    assert generate(client, auth, PROMPT).headers["x-cache"] == "MISS"


@pytest.mark.parametrize(
    ("header", "mode"),
    [
        (None, CacheMode.NORMAL),
        ("max-age=0", CacheMode.NORMAL),
        ("No-Cache", CacheMode.REFRESH),
        ("no-cache, no-store", CacheMode.NO_STORE),
        ("private, no-store", CacheMode.NO_STORE),
    ],
)
def test_cache_control_parsing(header, mode):
    assert CacheMode.from_header(header) is mode


@pytest.mark.runtimes("local")
@pytest.mark.settings(policy_cache_seconds=30)
def test_a_hit_reads_the_key_and_the_entry_and_nothing_else(client, auth, kv, objects):
    generate(client, auth, PROMPT)
    generate(client, auth, PROMPT)  # warms the policy cache
    kv.reads.clear()
    objects.calls.clear()
    r = generate(client, auth, PROMPT)
    assert r.headers["x-cache"] == "HIT"
    assert [key.split(":")[0] for key in kv.reads] == ["apikey", "cache"]
    assert objects.calls == []  # no R2 round trip, no image bytes


def test_misses_report_the_model_time_and_hits_do_not(client, auth):
    miss = generate(client, auth, PROMPT)
    assert miss.headers["server-timing"].startswith("model;dur=")
    assert float(miss.headers["server-timing"].split("dur=")[1]) >= 0
    assert "server-timing" not in generate(client, auth, PROMPT).headers
