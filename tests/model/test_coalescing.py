"""Concurrent identical requests share one model call."""

import asyncio

import pytest

from fluxgate.model.coalesce import InflightCoalescer, NoCoalescing

from ..support.admin import new_key
from ..support.bodies import generation

pytestmark = [pytest.mark.anyio, pytest.mark.runtimes("local", "worker")]

BODY = generation("a glass teapot", square=512, steps=4)


async def burst(async_client, headers, bodies):
    async with async_client() as http:
        return await asyncio.gather(
            *[
                http.post("/v1/images/generations", json=body, headers=h)
                for body, h in zip(bodies, headers, strict=True)
            ]
        )


async def test_fifty_identical_cold_requests_make_one_model_call(client, async_client, ai, auth):
    ai.latency = 0.05
    responses = await burst(async_client, [auth] * 50, [BODY] * 50)
    assert [r.status_code for r in responses] == [200] * 50
    assert ai.calls == 1
    caches = sorted(r.headers["x-cache"] for r in responses)
    assert caches.count("MISS") == 1 and caches.count("HIT") == 49
    assert len({r.json()["sha256"] for r in responses}) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    charged = [r.json()["cost"]["charged_usd"] for r in responses]
    assert sum(1 for c in charged if c > 0) == 1
    assert client.get("/v1/usage", headers=auth).json()["requests"] == 1


async def test_followers_asking_for_b64_get_the_bytes(async_client, ai, auth):
    ai.latency = 0.05
    bodies = [BODY] * 3 + [{**BODY, "response_format": "b64_json"}] * 3
    responses = await burst(async_client, [auth] * 6, bodies)
    assert ai.calls == 1
    inline = [r.json()["data"][0] for r in responses[3:]]
    assert all(len(item["b64_json"]) > 100 for item in inline)


async def test_a_failure_reaches_every_waiter_and_nothing_is_cached(client, async_client, ai, auth):
    # A request that arrives after the failure is a new request and may generate (nothing
    # was cached): the model takes a second here, so that all ten wait on the first call
    # even on a busy machine, where each joins through a Durable Object round trip.
    ai.latency = 1.0
    ai.fail_next("3040: Capacity temporarily exceeded")
    responses = await burst(async_client, [auth] * 10, [BODY] * 10)
    assert ai.calls == 0  # the failed call is not counted as a generation
    assert {r.status_code for r in responses} == {503}
    assert {r.json()["error"]["code"] for r in responses} == {"upstream_capacity"}
    assert len(ai.inputs) == 1  # one call failed, and only one was made
    again = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert again.status_code == 200 and again.headers["x-cache"] == "MISS"


@pytest.mark.runtimes("local")
async def test_a_failed_call_leaves_nothing_in_flight(coalescer, async_client, ai, auth):
    ai.fail_next("3040: Capacity temporarily exceeded")
    await burst(async_client, [auth] * 3, [BODY] * 3)
    assert len(coalescer) == 0


async def test_different_keys_do_not_share_with_a_per_key_cache(client, async_client, ai):
    ai.latency = 0.05
    a, b = new_key(client, "a"), new_key(client, "b")
    await burst(async_client, [a, b] * 3, [BODY] * 6)
    assert ai.calls == 2


# the benchmark's baseline; no deployment runs it
@pytest.mark.runtimes("local")
@pytest.mark.parametrize("coalescer", [NoCoalescing()], ids=["no-coalescing"])
async def test_without_coalescing_every_request_pays(coalescer, async_client, ai, auth):
    ai.latency = 0.05
    await burst(async_client, [auth] * 5, [BODY] * 5)
    assert ai.calls == 5


async def test_the_coalescer_shields_the_leader_from_a_waiter_that_gives_up():
    coalescer: InflightCoalescer[str] = InflightCoalescer()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    leader = asyncio.create_task(coalescer.run("k", work))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(coalescer.run("k", work))
    await asyncio.sleep(0)
    waiter.cancel()
    release.set()
    assert await leader == ("done", True)
    assert len(coalescer) == 0
