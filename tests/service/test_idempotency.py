"""Idempotency-Key: a retried POST replays the first answer, never a second generation."""

import asyncio
import uuid

import pytest

from ..support.admin import new_key, put_policy
from ..support.bodies import GENERATIONS, generate, generation
from ..support.image_files import image_bytes
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a tin robot on a swing", square=256, seed=11)
# Bypass the cache: without the key every retry of these would call the model again.
NO_CACHE = {"Cache-Control": "no-cache"}


def keyed(auth: dict[str, str], key: str | None = None, **more: str) -> dict[str, str]:
    return {**auth, **NO_CACHE, "Idempotency-Key": key or str(uuid.uuid4()), **more}


def usage(client, auth) -> dict:
    return client.get("/v1/usage", headers=auth).json()


# -- replay -------------------------------------------------------------------------------


def test_a_retry_replays_the_first_answer_without_a_model_call_or_a_charge(client, auth, ai):
    headers = keyed(auth)
    first = generate(client, headers, BODY)
    again = generate(client, headers, BODY)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content  # byte for byte
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["x-fluxgate-model"] == first.headers["x-fluxgate-model"]
    assert ai.calls == 1
    assert usage(client, auth)["requests"] == 1


def test_a_b64_json_answer_is_replayed_with_its_image(client, auth, ai):
    headers = keyed(auth)
    body = {**BODY, "response_format": "b64_json"}
    first = generate(client, headers, body)
    again = generate(client, headers, body)
    assert first.status_code == 200 and len(first.json()["data"][0]["b64_json"]) > 100
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true" and ai.calls == 1


def test_the_same_key_for_another_request_is_refused(client, auth, ai):
    headers = keyed(auth)
    assert generate(client, headers, BODY).status_code == 200
    other = generate(client, headers, {**BODY, "seed": 12})
    assert other.status_code == 422
    error = other.json()["error"]
    assert (error["code"], error["param"]) == ("idempotency_key_reused", "Idempotency-Key")
    # what is asked of the answer is part of the request too
    as_b64 = generate(client, headers, {**BODY, "response_format": "b64_json"})
    assert as_b64.status_code == 422
    assert ai.calls == 1


def test_keys_are_scoped_to_the_caller(client, auth, ai):
    key = str(uuid.uuid4())
    other = new_key(client, "other app")
    assert generate(client, keyed(auth, key), BODY).status_code == 200
    theirs = generate(client, keyed(other, key), BODY)
    assert theirs.status_code == 200 and "idempotent-replayed" not in theirs.headers
    # one API key's end users do not share keys either
    alice = generate(client, keyed(auth, key), {**BODY, "user": "alice"})
    assert alice.status_code == 200 and "idempotent-replayed" not in alice.headers
    assert ai.calls == 3


def test_a_refusal_is_replayed_but_a_retryable_failure_is_not_stored(client, auth, ai):
    put_policy(client, deny_terms=["swing"])
    headers = keyed(auth)
    refused = generate(client, headers, BODY)
    assert refused.status_code == 400
    put_policy(client, deny_terms=[])
    again = generate(client, headers, BODY)  # the same request gets the same answer
    assert again.status_code == 400 and again.content == refused.content
    assert again.headers["idempotent-replayed"] == "true"

    headers = keyed(auth)
    ai.fail_next("3040: Capacity temporarily exceeded, please try again.")
    failed = generate(client, headers, BODY)
    assert failed.status_code == 503
    retried = generate(client, headers, BODY)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert ai.calls == 1


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_a_key_is_remembered_for_24_hours(client, auth, ai, clock):
    headers = keyed(auth)
    assert generate(client, headers, BODY).status_code == 200
    clock.advance(23 * 3600)
    assert generate(client, headers, BODY).headers["idempotent-replayed"] == "true"
    clock.advance(3600 + 1)
    later = generate(client, headers, BODY)
    assert later.status_code == 200 and "idempotent-replayed" not in later.headers
    assert ai.calls == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve"])
def test_a_malformed_key_is_refused(client, auth, key):
    r = client.post(
        GENERATIONS,
        json=BODY,
        headers={**auth, "Idempotency-Key": key.encode()},
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_idempotency_key"


# -- async submissions and edits ----------------------------------------------------------


def test_an_async_retry_creates_no_second_job(client, auth, ai):
    headers = keyed(auth, Prefer="respond-async")
    first = generate(client, headers, BODY)
    again = generate(client, headers, BODY)
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    jobs = client.get("/v1/jobs", headers=auth).json()["data"]
    assert [job["id"] for job in jobs] == [first.json()["id"]]


def test_edits_take_the_key_too(client, auth, ai):
    headers = keyed(auth)
    files = {"image": ("ref.png", image_bytes("PNG", 64, 64), "image/png")}
    data = {"prompt": "the robot in blue", "size": "256x256", "seed": "3"}
    first = client.post("/v1/images/edits", data=data, files=files, headers=headers)
    again = client.post("/v1/images/edits", data=data, files=files, headers=headers)
    assert first.status_code == 200, first.text
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    other = {"image": ("ref.png", image_bytes("PNG", 64, 65), "image/png")}
    changed = client.post("/v1/images/edits", data=data, files=other, headers=headers)
    assert changed.status_code == 422  # another reference image is another request
    assert ai.calls == 1


# -- concurrency --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_twenty_concurrent_retries_make_one_model_call_and_one_charge(
    client, async_client, ai, auth
):
    """The first claims the key; the others wait for its answer and replay it."""
    ai.latency = 0.3
    headers = keyed(auth)
    async with async_client() as http:
        responses = await asyncio.gather(
            *[http.post(GENERATIONS, json=BODY, headers=headers) for _ in range(20)]
        )
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.content for r in responses}) == 1  # identical bodies
    replays = [r.headers.get("idempotent-replayed") for r in responses]
    assert replays.count("true") == 19
    assert ai.calls == 1
    assert usage(client, auth)["requests"] == 1
    assert usage(client, auth)["spent_usd"] == pytest.approx(
        responses[0].json()["cost"]["charged_usd"]
    )


def test_a_spent_budget_is_not_kept_so_the_retry_runs_once_it_is_raised(client, auth, ai):
    put_policy(client, tiers={"standard": {"daily_budget_usd": 0.0}})
    headers = keyed(auth)
    refused = generate(client, headers, BODY)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    put_policy(client, tiers={"standard": {"daily_budget_usd": 10.0}})
    retried = generate(client, headers, BODY)
    assert retried.status_code == 200 and "idempotent-replayed" not in retried.headers
    assert ai.calls == 1


def test_the_same_key_with_another_model_is_another_request(client, auth, ai):
    headers = keyed(auth)
    assert generate(client, headers, BODY).status_code == 200
    klein = generate(client, headers, {**BODY, "model": "flux-2-klein-4b"})
    assert klein.status_code == 422
    # another name of the same model is the same request
    same = generate(client, headers, {**BODY, "model": "@cf/black-forest-labs/flux-2-dev"})
    assert same.status_code == 200 and same.headers["idempotent-replayed"] == "true"
    assert ai.calls == 1


class FailingStore:
    """An idempotency store whose every call fails, as an unreachable Durable Object does."""

    async def claim(self, *args):
        raise RuntimeError("Durable Object storage operation exceeded timeout")

    async def complete(self, *args):
        raise RuntimeError("unreachable")

    async def release(self, *args):
        raise RuntimeError("unreachable")


@pytest.mark.parametrize(
    ("store", "status", "code"),
    [(None, 501, "idempotency_unavailable"), (FailingStore(), 503, "idempotency_unavailable")],
)
def test_without_a_working_store_the_header_is_refused_not_ignored(
    make_runtime, ai, store, status, code
):
    """No store (a Worker without the IDEMPOTENCY binding) or a failing one: the request
    is refused before anything runs, since running it unprotected could charge twice."""
    from fastapi.testclient import TestClient

    from fluxgate.api.app import create_app

    gateway = make_runtime(idempotency=store).gateway
    with TestClient(create_app(lambda _r: gateway)) as http:
        auth = new_key(http)
        r = generate(http, keyed(auth), BODY)
        assert r.status_code == status and r.json()["error"]["code"] == code
        assert r.json()["error"]["param"] == "Idempotency-Key"
        assert generate(http, auth, BODY).status_code == 200  # without the header: as ever
    assert ai.calls == 1


# -- bounded: caps per API key, counted against the rate limit ----------------------------


def hit(client, auth, key: str | None = None, **body):
    """An idempotent request answered from the cache (the test seeds it first)."""
    return generate(client, {**auth, "Idempotency-Key": key or str(uuid.uuid4())}, {**BODY, **body})


@pytest.mark.settings(idempotency_max_keys=3)
def test_an_api_key_holds_at_most_idempotency_max_keys(client, auth, ai):
    """Every new key stores an answer for a day, even a free cache hit: each API key may
    hold so many, then a new one is refused until the oldest expires. Stored keys still
    replay, and other API keys are not affected."""
    assert generate(client, auth, BODY).status_code == 200  # the cache entry
    first = str(uuid.uuid4())
    assert hit(client, auth, first).status_code == 200
    assert hit(client, auth).status_code == 200
    assert hit(client, auth).status_code == 200

    r = hit(client, auth)
    assert r.status_code == 429, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("idempotency_keys_exhausted", "Idempotency-Key")
    assert 1 <= int(r.headers["Retry-After"]) <= 24 * 3600
    # end users of the key count against the same API key
    assert hit(client, auth, user="alice").json()["error"]["code"] == "idempotency_keys_exhausted"

    again = hit(client, auth, first)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert generate(client, auth, BODY).status_code == 200  # without the header: as ever
    assert hit(client, new_key(client, "another app")).status_code == 200
    assert ai.calls == 2  # the first entry, and the other app's own (the cache is per key)


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
@pytest.mark.settings(idempotency_max_keys=1)
def test_a_new_key_is_stored_again_once_the_oldest_expires(client, auth, clock):
    assert generate(client, auth, BODY).status_code == 200
    assert hit(client, auth).status_code == 200
    refused = hit(client, auth)
    assert refused.status_code == 429
    clock.advance(int(refused.headers["Retry-After"]))
    assert hit(client, auth).status_code == 200


@pytest.mark.settings(idempotency_max_bytes=16 * 1024)
def test_an_api_key_holds_at_most_idempotency_max_bytes(client, auth):
    """The bytes are bounded too (a running request holds 4 KiB for its answer)."""
    assert generate(client, auth, BODY).status_code == 200
    answers = [hit(client, auth) for _ in range(16)]
    statuses = [a.status_code for a in answers]
    stored = statuses.index(429)
    assert stored > 1 and set(statuses[:stored]) == {200}
    assert answers[stored].json()["error"]["code"] == "idempotency_keys_exhausted"


def _two_a_minute():
    return pytest.mark.rate_limits({"standard": {"limit": 2, "period": 60}})


@_two_a_minute()
def test_a_stored_cache_hit_counts_against_the_rate_limit(client, auth, ai, rate_limit_rules):
    """A cache hit is free, but not one that stores a new key: it counts as a model-bound
    request does, so keys cannot be stored faster than the caller may generate. A replay
    stores nothing and counts nothing."""
    rate_limit_rules()
    assert generate(client, auth, BODY).status_code == 200  # a miss: counted (1 of 2)
    first = str(uuid.uuid4())
    counted = hit(client, auth, first)  # 2 of 2
    assert counted.status_code == 200 and counted.headers["x-cache"] == "HIT"
    assert counted.headers["ratelimit-limit"] == "2"

    r = hit(client, auth)
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["Retry-After"]) >= 1

    assert generate(client, auth, BODY).status_code == 200  # a plain hit is still free
    again = hit(client, auth, first)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert ai.calls == 1


@_two_a_minute()
def test_a_stored_refusal_counts_against_the_rate_limit(client, auth, rate_limit_rules):
    rate_limit_rules(deny_terms=["swing"])
    for _ in range(2):
        assert hit(client, auth).status_code == 400  # prompt_rejected, kept: counted
    r = hit(client, auth)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
