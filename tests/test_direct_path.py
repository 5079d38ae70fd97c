"""The direct path (``api/direct.py``) answers JSON generations itself, and declines to the
route, before any side effect, whatever it would not answer exactly as the route does."""

import json

import pytest

from fluxgate.access.rate_limits import FailedAttempts
from fluxgate.api.direct import DirectPath, DirectRequest

from .support.admin import new_key, put_policy
from .support.bodies import generate, generation

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a kite over the dunes", square=512, steps=4)


def asked(auth: dict[str, str], body: dict, **headers: str) -> DirectRequest:
    raw = json.dumps(body).encode()
    sent = {"content-type": "application/json", "content-length": str(len(raw)), **headers}
    sent.update({k.lower(): v for k, v in auth.items()})
    return DirectRequest(sent.get, raw, "http://testserver/", "127.0.0.1")


async def kv_keys(kv) -> list[str]:
    return [entry.name for entry in (await kv.list("")).keys]


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_a_miss_then_a_hit_are_answered_without_the_route(client, gateway, ai):
    direct = DirectPath(FailedAttempts())
    auth = new_key(client)
    miss = await direct.answer(gateway, asked(auth, BODY))
    hit = await direct.answer(gateway, asked(auth, BODY))
    assert miss is not None and hit is not None
    assert (miss.status, miss.headers["x-cache"]) == (200, "MISS")
    assert "server-timing" in miss.headers
    assert (hit.status, hit.headers["x-cache"]) == (200, "HIT")
    assert json.loads(hit.prefix)["id"] == json.loads(miss.prefix)["id"]
    assert ai.calls == 1


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_b64_json_is_left_to_the_runtime_to_splice(client, gateway):
    direct = DirectPath(FailedAttempts())
    answer = await direct.answer(
        gateway, asked(new_key(client), {**BODY, "response_format": "b64_json"})
    )
    assert answer is not None and answer.image is not None
    body = json.loads(answer.prefix + await answer.image.base64() + answer.suffix)
    assert body["data"][0]["b64_json"] and "url" not in body["data"][0]


@pytest.mark.runtimes("local")
@pytest.mark.anyio
@pytest.mark.parametrize(
    "case",
    ["unknown key", "invalid body", "async", "webhook without async", "unknown model"],
)
async def test_it_declines_before_any_side_effect(client, gateway, kv, ai, case):
    auth = new_key(client)
    body, headers = dict(BODY), {}
    if case == "unknown key":
        auth = {"Authorization": "Bearer fgk_" + "x" * 40}
    elif case == "invalid body":
        body["steps"] = "many"
    elif case == "async":
        headers["prefer"] = "respond-async"
    elif case == "webhook without async":
        body["webhook_url"] = "https://example.com/hook"
    else:
        body["model"] = "dall-e-3"
    before = await kv_keys(kv)
    assert await DirectPath(FailedAttempts()).answer(gateway, asked(auth, body, **headers)) is None
    assert await kv_keys(kv) == before and ai.calls == 0


@pytest.mark.runtimes("local")
@pytest.mark.anyio
async def test_a_moderated_tier_is_left_to_the_route(client, gateway, ai):
    put_policy(client, tiers={"standard": {"moderation": "fail_closed"}})
    answer = await DirectPath(FailedAttempts()).answer(gateway, asked(new_key(client), BODY))
    assert answer is None and ai.calls == 0


def test_a_declined_body_reaches_the_route_whole(client, auth):
    """The body the direct path read is handed to the route as it came."""
    r = generate(client, auth, {**BODY, "webhook_url": "https://example.com/hook"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "webhook_requires_async"
    r = generate(client, auth, BODY, headers={"Prefer": "respond-async"})
    assert r.status_code == 202 and r.json()["status"] in ("queued", "running", "succeeded")
