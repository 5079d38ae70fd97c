"""Async jobs under abuse and failure: shared reference images, crashes mid-generation,
coalesced refusals, retries by code, and webhook verification that fails in one way."""

import asyncio
import contextlib
import json
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxgate.errors import ApiError
from fluxgate.jobs.table import LEASE_SECONDS
from fluxgate.jobs.webhooks import WebhookVerificationError, signed_headers, verify
from fluxgate.model.coalesce import InflightCoalescer, NotShared
from fluxgate.model.pricing import estimate
from fluxgate.model.upstream import is_transient, is_work_failure

from ..support.admin import new_key, put_policy
from ..support.bodies import generation
from ..support.image_files import image_bytes
from ..support.polling import finished, wait_for
from ..support.receiver import Receiver
from ..support.runtimes import HOLDS_QUEUE, MOVES_CLOCK

BODY = generation("a slow sunset", square=512, steps=4)
ASYNC = {"Prefer": "respond-async"}
COST = estimate(512, 512, 4).usd

pytestmark = [
    pytest.mark.settings(webhook_allow_loopback=True, webhook_retry_base_seconds=0.01),
    pytest.mark.runtimes("local", "worker"),
]


# -- jobs that share a reference image -----------------------------------------------------


@pytest.mark.runtimes("local", reason=HOLDS_QUEUE)
def test_jobs_sharing_a_reference_image_all_succeed(client, async_client, jobs, storage):
    keys = [new_key(client, "tenant-a"), new_key(client, "tenant-b")]
    reference = image_bytes("PNG", 100, 80)
    jobs.pause()  # every job is staged before the first one runs (and cleans up)

    async def one(http, i):
        r = await http.post(
            "/v1/images/generations",
            headers={**keys[i % 2], **ASYNC},
            data={"prompt": f"mix {i}", "width": "256", "height": "256", "steps": "2"},
            files={"input_image_0": ("a.png", reference, "image/png")},
        )
        assert r.status_code == 202, r.text
        return r.json()["id"], keys[i % 2]

    async def submit_all():
        async with async_client() as http:
            return await asyncio.gather(*[one(http, i) for i in range(8)])

    submitted = asyncio.run(submit_all())
    jobs.resume()
    jobs.drain()
    outcomes = [finished(client, key, job_id) for job_id, key in submitted]
    assert [o["status"] for o in outcomes] == ["succeeded"] * 8, [o.get("error") for o in outcomes]
    for job_id, _ in submitted:  # each job's own staged copy is gone with it
        assert not storage.object_exists(f"inputs/{job_id}/0.png")


# -- a crash mid-generation charges once ---------------------------------------------------


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
@pytest.mark.parametrize("cache_control", ["no-cache", None])
def test_a_job_rerun_after_a_crash_is_charged_once(client, auth, ai, jobs, clock, cache_control):
    """The first consumer reserves the budget and then hangs in the model call, as a
    consumer that died would (its lease runs out, its refund never comes); the message is
    delivered again and a second consumer runs the job. One image, one charge.

    With ``no-cache`` the re-run makes its own model call; without, it joins the hung
    attempt's in-flight call (a coalesced success must keep the job's one charge)."""
    ai.latency = 3.0
    headers = {**auth, **ASYNC, **({"Cache-Control": cache_control} if cache_control else {})}
    job = client.post("/v1/images/generations", json=BODY, headers=headers).json()
    wait_for(lambda: jobs.record(job["id"])["status"] == "running")
    time.sleep(0.5)  # the first attempt is inside the model call, its budget reserved
    clock.advance(LEASE_SECONDS + 1)
    jobs.send({"type": "job", "job_id": job["id"]})  # the redelivery
    done = finished(client, auth, job["id"])
    assert done["status"] == "succeeded"
    jobs.drain()
    time.sleep(ai.latency)  # the first attempt ends too, and loses its lease
    jobs.drain()
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["requests"] == 1 and usage["spent_usd"] == pytest.approx(COST)
    assert jobs.record(job["id"])["attempts"] == 2


def budget(client, usd):
    put_policy(client, tiers={"standard": {"daily_budget_usd": usd}})


def test_a_failed_job_releases_its_reservation_once(client, auth, ai, jobs):
    ai.fail_next("5006: Error: bad input")
    job = client.post("/v1/images/generations", json=BODY, headers={**auth, **ASYNC}).json()
    assert finished(client, auth, job["id"])["status"] == "failed"
    jobs.deliver({"type": "job", "job_id": job["id"]})  # a duplicate of a finished job
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["requests"] == 0 and usage["spent_usd"] == 0


def test_a_retried_job_is_charged_once(client, auth, ai):
    ai.fail_next("3040: Capacity temporarily exceeded")
    job = client.post("/v1/images/generations", json=BODY, headers={**auth, **ASYNC}).json()
    assert finished(client, auth, job["id"])["status"] == "succeeded"
    usage = client.get("/v1/usage", headers=auth).json()
    assert usage["requests"] == 1 and usage["spent_usd"] == pytest.approx(COST)


def test_ledger_reservations_with_an_id_are_idempotent(ledger):
    async def scenario():
        assert (await ledger.reserve("k", "2027-01-01", 7, 100, "job_1")).accepted
        again = await ledger.reserve("k", "2027-01-01", 7, 100, "job_1")
        assert again.accepted and again.usage.micro_usd == 7 and again.usage.requests == 1
        await ledger.release("k", "job_1")
        await ledger.release("k", "job_1")  # once only
        assert (await ledger.usage("k", "2027-01-01")).micro_usd == 0
        refused = await ledger.reserve("k", "2027-01-01", 700, 100, "job_2")
        assert not refused.accepted
        assert (await ledger.reserve("k", "2027-01-01", 7, 100, "job_2")).accepted  # retried
        assert (await ledger.usage("k", "2027-01-01")).requests == 1

    asyncio.run(scenario())


# -- coalescing shares outcomes, not refusals ----------------------------------------------


@pytest.mark.runtimes("local")
@pytest.mark.anyio
@pytest.mark.settings(cache_scope="global")
async def test_a_waiter_never_receives_its_leaders_budget_refusal(ledger, client, ai):
    broke = new_key(client, "broke", overrides={"daily_budget_usd": 0.0})
    rich = new_key(client, "rich")
    gate = ledger.hold()  # every reservation waits until the gate opens
    transport = httpx.ASGITransport(app=client.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://fluxgate") as http:
        leader = asyncio.create_task(http.post("/v1/images/generations", json=BODY, headers=broke))
        await asyncio.sleep(0.2)  # the leader waits on its reservation
        waiter = asyncio.create_task(http.post("/v1/images/generations", json=BODY, headers=rich))
        await asyncio.sleep(0.2)  # the waiter has joined the leader's run
        gate.set()
        refused, served = await leader, await waiter
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "budget_exceeded"
    assert served.status_code == 200, served.text
    assert "budget" not in served.text and ai.calls == 1


def test_the_coalescer_shares_work_failures_and_not_refusals():
    async def scenario():
        coalescer = InflightCoalescer()
        started = asyncio.Event()

        async def refused():
            started.set()
            await asyncio.sleep(0.05)
            raise NotShared(ApiError(429, "budget_exceeded", "$9.99 used"))

        async def mine():
            return "image"

        leader = asyncio.create_task(coalescer.run("k", refused))
        await started.wait()
        waiter = asyncio.create_task(coalescer.run("k", mine))
        with pytest.raises(ApiError) as caught:
            await leader
        assert caught.value.code == "budget_exceeded"  # the leader's own, unwrapped
        assert await waiter == ("image", True)  # the waiter ran for itself, as leader

        async def capacity():
            await asyncio.sleep(0.05)
            raise ApiError(503, "upstream_capacity", "out of capacity")

        results = await asyncio.gather(
            coalescer.run("k", capacity), coalescer.run("k", mine), return_exceptions=True
        )
        assert all(isinstance(r, ApiError) and r.code == "upstream_capacity" for r in results)

    asyncio.run(scenario())


def test_only_model_and_storage_failures_are_shared():
    for code in ("upstream_capacity", "upstream_invalid_input", "storage_unavailable"):
        assert is_work_failure(ApiError(503, code, "x"))
    for code in ("budget_exceeded", "rate_limited", "prompt_rejected", "moderation_unavailable"):
        assert not is_work_failure(ApiError(429, code, "x"))
    assert not is_work_failure(RuntimeError("bug"))


# -- retries by code, not by status --------------------------------------------------------


def test_a_job_over_budget_fails_at_once(client, auth, jobs):
    budget(client, COST / 2)
    job = client.post("/v1/images/generations", json=BODY, headers={**auth, **ASYNC}).json()
    done = finished(client, auth, job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "budget_exceeded"
    assert jobs.record(job["id"])["attempts"] == 1  # a 429 that no retry can pass


def test_retries_are_decided_by_code():
    for code in ("budget_exceeded", "rate_limited", "tier_limit_exceeded", "prompt_rejected"):
        assert not is_transient(ApiError(429, code, "x"))
    for code in ("upstream_rate_limited", "upstream_capacity", "upstream_timeout"):
        assert is_transient(ApiError(429, code, "x"))
    assert is_transient(ApiError(503, "storage_unavailable", "x"))


# -- verify raises WebhookVerificationError and nothing else -------------------------------

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NOW = 1_700_000_000


def signed(body=b'{"type":"x"}'):
    return signed_headers([SECRET], "msg_1", body, now=NOW), body


@pytest.mark.parametrize(
    "timestamp", ["\u00b2", "\u0661\u0667", "1" * 5000, "-5", " 5", "+5", "1_0", "1e9", "0x10"]
)
def test_a_malformed_timestamp_is_a_verification_error(timestamp):
    headers, body = signed()
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, {**headers, "webhook-timestamp": timestamp}, body, now=NOW)


def nested(depth):
    return ("[" * depth + "]" * depth).encode()


@pytest.mark.parametrize(
    "case",
    [
        lambda h, b: (SECRET, {**h, "webhook-id": None}, b),
        lambda h, b: (SECRET, {**h, "webhook-timestamp": 1_700_000_000}, b),
        lambda h, b: (SECRET, {**h, "webhook-signature": b"v1,xx"}, b),
        lambda h, b: (SECRET, {**h, "webhook-signature": "v1,\ud800"}, b),
        lambda h, b: (SECRET, {**h, "webhook-id": "\ud800"}, b),
        lambda h, b: (SECRET, {**h, "webhook-id": "m\u00e9"}, b),
        lambda h, b: (SECRET, [("webhook-id", "x")], b),
        lambda h, b: (SECRET, None, b),
        lambda h, b: (None, h, b),
        lambda h, b: (b"whsec_abc", h, b),
        lambda h, b: ("", h, b),
        lambda h, b: ("whsec_", h, b),
        lambda h, b: ("whsec_!!!", h, b),
        lambda h, b: ("whsec_\ud800", h, b),
        lambda h, b: (SECRET, h, b.decode()),
        lambda h, b: (SECRET, h, None),
        lambda h, b: (SECRET, h, 42),
    ],
)
def test_malformed_headers_secrets_and_bodies_are_verification_errors(case):
    with pytest.raises(WebhookVerificationError):
        verify(*case(*signed()), now=NOW)


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"[1, 2]", b'"x"', nested(100_000)])
def test_a_signed_body_that_is_no_json_object_is_a_verification_error(body):
    headers, _ = signed(body)
    with pytest.raises(WebhookVerificationError):
        verify(SECRET, headers, body, now=NOW)


header_values = st.one_of(
    st.text(max_size=40), st.binary(max_size=10), st.integers(), st.none(), st.just("9" * 5000)
)


@given(
    secret=st.one_of(st.just(SECRET), st.text(max_size=40), st.none()),
    headers=st.dictionaries(
        st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "x"]),
        header_values,
    ),
    body=st.one_of(st.binary(max_size=40), st.text(max_size=10)),
)
@settings(max_examples=400, deadline=None)
def test_verify_fuzzed_raises_only_verification_errors(secret, headers, body):
    with contextlib.suppress(WebhookVerificationError):
        verify(secret, headers, body, now=NOW)


@given(timestamp=st.text(max_size=30), body=st.binary(max_size=30))
@settings(max_examples=300, deadline=None)
def test_verify_fuzzed_timestamps_on_signed_deliveries(timestamp, body):
    headers, _ = signed(body)
    with contextlib.suppress(WebhookVerificationError):
        verify(SECRET, {**headers, "webhook-timestamp": timestamp}, body, now=NOW)


def test_the_readme_receiver_answers_400_never_500():
    """A receiver written as docs/reference.md shows: catch WebhookVerificationError, answer 400."""

    def receive(headers, body):
        try:
            return 200, verify(SECRET, headers, body, now=NOW)
        except WebhookVerificationError:
            return 400, None

    headers, body = signed()
    assert receive(headers, body)[0] == 200
    assert receive({**headers, "webhook-timestamp": "\u00b2"}, body)[0] == 400
    assert receive({**headers, "webhook-timestamp": "1" * 5000}, body)[0] == 400
    assert json.loads(body) == receive(headers, body)[1]


# -- the webhook secret rotates with the key -----------------------------------------------


@pytest.mark.parametrize("grace", [0, 3600])
def test_rotating_a_key_rotates_its_webhook_secret(client, admin, clock, grace):
    made = client.post("/v1/admin/keys", json={"name": "rotating"}, headers=admin).json()
    old_auth = {"Authorization": f"Bearer {made['key']}"}
    old = client.get("/v1/webhooks/secret", headers=old_auth).json()
    rotated = client.post(
        f"/v1/admin/keys/{made['id']}/rotate", json={"grace_seconds": grace}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    new_auth = {"Authorization": f"Bearer {rotated.json()['key']}"}
    new = client.get("/v1/webhooks/secret", headers=new_auth).json()
    assert new["secret"] != old["secret"] and not set(new["all"]) & set(old["all"])
    with Receiver() as receiver:
        job = client.post(
            "/v1/images/generations",
            json={**BODY, "webhook_url": receiver.url},
            headers={**new_auth, **ASYNC},
        ).json()
        headers, body, _ = wait_for(lambda: receiver.deliveries)[0]
    assert verify(new["secret"], headers, body, now=clock())["data"]["id"] == job["id"]
    with pytest.raises(WebhookVerificationError):  # a leaked old secret forges nothing
        verify(old["secret"], headers, body, now=clock())
