"""End users' own quotas (the policy's ``user_rate_limit`` and ``user_daily_budget_usd``),
inside the key's, exact under concurrency; and usage that belongs to whom asks."""

import asyncio
from datetime import date

import pytest

from ..support.admin import ADMIN_HEADERS, early_in_a_window, new_key, put_policy
from ..support.bodies import GENERATIONS, generate, generation
from ..support.runtimes import on_worker

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a lighthouse", square=512, steps=10)
COST = 10 * 1 * 0.00041  # one output tile, ten steps
HOUR = 3600


def quotas(client, request, *, images=None, usd=None, key_usd=10.0, **tier):
    """A policy whose tier gives each end user ``images`` an hour and ``usd`` a day."""
    put_policy(
        client,
        tiers={
            "standard": {
                "daily_budget_usd": key_usd,
                "user_rate_limit": None if images is None else {"limit": images, "period": HOUR},
                "user_daily_budget_usd": usd,
                **tier,
            }
        },
        rate_limits={"standard": {"limit": 10_000, "period": 60}},
    )
    if on_worker(request):  # the Durable Object counts on workerd's own clock
        early_in_a_window(HOUR)


def token_for(client, auth, user):
    minted = client.post("/v1/tokens", json={"subject": user}, headers=auth)
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['token']}"}


def refused(response, code):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == code
    return response


def usage(client, auth, **query):
    r = client.get("/v1/usage", params=query, headers=auth)
    assert r.status_code == 200, r.text
    return r.json()


# -- exact under concurrency ------------------------------------------------------------------


@pytest.mark.anyio
async def test_four_users_sending_ten_requests_at_once_get_exactly_five_images_each(
    client, async_client, ai, request
):
    quotas(client, request, images=5, usd=0.10)
    auth = new_key(client, "app")
    users = [f"user-{n}" for n in range(4)]
    tokens = {user: token_for(client, auth, user) for user in users}
    ai.latency = 0.05  # admitted requests overlap the refused ones
    async with async_client() as http:
        sent = [(user, seed) for user in users for seed in range(10)]
        responses = await asyncio.gather(
            *[
                http.post(
                    GENERATIONS,
                    json={**BODY, "prompt": f"a lighthouse for {user}", "seed": seed},
                    headers=tokens[user],
                )
                for user, seed in sent
            ]
        )
    for user in users:
        mine = [r for (who, _), r in zip(sent, responses, strict=True) if who == user]
        statuses = sorted(r.status_code for r in mine)
        assert statuses.count(200) == 5 and statuses.count(429) == 5, (user, statuses)
        assert {r.json()["error"]["code"] for r in mine if r.status_code == 429} == {
            "user_rate_limited"
        }
        assert usage(client, tokens[user])["requests"] == 5
    assert ai.calls == 20
    assert usage(client, auth)["requests"] == 20


@pytest.mark.anyio
async def test_a_users_budget_admits_exactly_what_it_pays_for_under_concurrency(
    client, async_client, ai, request
):
    quotas(client, request, images=10, usd=COST * 3)
    auth = new_key(client, "app")
    token = token_for(client, auth, "spender")
    ai.latency = 0.05
    async with async_client() as http:
        responses = await asyncio.gather(
            *[
                http.post(GENERATIONS, json={**BODY, "seed": seed}, headers=token)
                for seed in range(8)
            ]
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3 and statuses.count(429) == 5, statuses
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {
        "user_budget_exceeded"
    }
    assert usage(client, token)["spent_usd"] == pytest.approx(COST * 3)


# -- what a refused end user is told ------------------------------------------------------------


def test_past_its_rate_an_end_user_gets_429_user_rate_limited_with_its_own_pacing(client, request):
    quotas(client, request, images=2)
    auth = new_key(client, "app")
    token = token_for(client, auth, "eager")
    first = generate(client, token, {**BODY, "seed": 1})
    assert first.status_code == 200
    assert first.headers["RateLimit-Policy"] == f'2;w={HOUR};name="user"'
    assert first.headers["RateLimit-Remaining"] == "1"
    assert generate(client, token, {**BODY, "seed": 2}).status_code == 200
    third = refused(generate(client, token, {**BODY, "seed": 3}), "user_rate_limited")
    assert third.headers["RateLimit-Policy"] == f'2;w={HOUR};name="user"'
    assert third.headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(third.headers["Retry-After"]) <= HOUR
    assert "end user" in third.json()["error"]["message"]
    # another end user of the same key, and the key itself, are not held back
    assert generate(client, token_for(client, auth, "calm"), {**BODY, "seed": 3}).status_code == 200
    assert generate(client, auth, {**BODY, "seed": 3}).status_code == 200


def test_past_its_budget_an_end_user_gets_429_user_budget_exceeded_until_midnight(client, request):
    quotas(client, request, usd=COST * 2)
    auth = new_key(client, "app")
    token = token_for(client, auth, "spender")
    for seed in (1, 2):
        assert generate(client, token, {**BODY, "seed": seed}).status_code == 200
    third = refused(generate(client, token, {**BODY, "seed": 3}), "user_budget_exceeded")
    assert 1 <= int(third.headers["Retry-After"]) <= 86400
    assert "end user's daily budget" in third.json()["error"]["message"]
    assert generate(client, token, {**BODY, "seed": 1}).status_code == 200  # a hit is free


def test_the_keys_own_budget_still_caps_every_end_user_together(client, request):
    quotas(client, request, usd=COST * 5, key_usd=COST * 3)
    auth = new_key(client, "app")
    spent = 0
    for n in range(3):
        token = token_for(client, auth, f"user-{n}")
        assert generate(client, token, {**BODY, "seed": n}).status_code == 200
        spent += 1
    refused(
        generate(client, token_for(client, auth, "late"), {**BODY, "seed": 9}), "budget_exceeded"
    )
    assert usage(client, auth)["requests"] == spent


def test_an_api_key_acting_for_an_end_user_counts_against_that_users_quota(client, request):
    """OpenAI's ``user`` names the same end user a client token does."""
    quotas(client, request, images=1)
    auth = new_key(client, "backend")
    assert generate(client, auth, {**BODY, "seed": 1, "user": "alice"}).status_code == 200
    refused(
        generate(client, token_for(client, auth, "alice"), {**BODY, "seed": 2}), "user_rate_limited"
    )


def test_a_failed_model_call_gives_the_end_user_its_money_back(client, request, ai):
    quotas(client, request, usd=COST)
    auth = new_key(client, "app")
    token = token_for(client, auth, "unlucky")
    ai.fail_next("3040: Capacity temporarily exceeded")
    assert generate(client, token, {**BODY, "seed": 1}).status_code == 503
    assert usage(client, token)["spent_usd"] == 0
    assert generate(client, token, {**BODY, "seed": 1}).status_code == 200


def test_a_key_override_replaces_the_tiers_end_user_quota(client, request):
    quotas(client, request, images=100)
    auth = new_key(client, "strict", overrides={"user_rate_limit": {"limit": 1, "period": 60}})
    token = token_for(client, auth, "bob")
    assert generate(client, token, {**BODY, "seed": 1}).status_code == 200
    third = refused(generate(client, token, {**BODY, "seed": 2}), "user_rate_limited")
    assert third.headers["RateLimit-Policy"] == '1;w=60;name="user"'


def test_an_end_user_quota_shows_in_the_callers_policy(client, request):
    quotas(client, request, images=5, usd=0.10)
    token = token_for(client, new_key(client, "app"), "carol")
    limits = client.get("/v1/policy", headers=token).json()["limits"]
    assert limits["user_rate_limit"] == {"limit": 5, "period": HOUR}
    assert limits["user_daily_budget_usd"] == 0.10


# -- usage that belongs to whom asks -----------------------------------------------------------


def test_a_client_token_reads_its_own_end_users_usage_and_quota_never_the_keys(client, request):
    quotas(client, request, images=5, usd=0.10)
    auth = new_key(client, "app")
    alice, bob = token_for(client, auth, "alice"), token_for(client, auth, "bob")
    for seed in (1, 2):
        assert generate(client, alice, {**BODY, "seed": seed}).status_code == 200
    assert generate(client, bob, {**BODY, "seed": 3}).status_code == 200

    mine = usage(client, alice)
    assert mine["user"] == "alice"
    assert mine["requests"] == 2 and mine["spent_usd"] == pytest.approx(COST * 2)
    assert mine["daily_budget_usd"] == 0.10
    assert mine["remaining_usd"] == pytest.approx(0.10 - COST * 2)
    assert mine["rate_limit"]["limit"] == 5 and mine["rate_limit"]["remaining"] == 3
    assert mine["rate_limit"]["period"] == HOUR
    assert mine["top_users"] is None  # other end users are not a token's to see
    # its own history too, a range of days
    today = date.fromisoformat(mine["day"])
    ranged = usage(client, alice, **{"from": today.replace(day=1).isoformat()})
    assert ranged["days"][-1]["requests"] == 2 and ranged["user"] == "alice"
    assert usage(client, alice, user="alice")["requests"] == 2

    for other in ("bob", "someone"):
        r = client.get("/v1/usage", params={"user": other}, headers=alice)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "insufficient_scope"
        assert r.json()["error"]["param"] == "user"
        assert "bob" not in r.text or other == "bob"
    assert usage(client, bob)["requests"] == 1


def test_the_key_reads_any_end_users_usage_and_its_top_users(client, request):
    quotas(client, request, images=5)
    auth = new_key(client, "app")
    for user, images in (("alice", 1), ("bob", 3)):
        token = token_for(client, auth, user)
        for seed in range(images):
            assert (
                generate(client, token, {**BODY, "seed": seed, "prompt": user}).status_code == 200
            )
    whole = usage(client, auth)
    assert whole["user"] is None and whole["requests"] == 4
    assert [(row["user"], row["requests"]) for row in whole["top_users"]] == [
        ("bob", 3),
        ("alice", 1),
    ]
    assert whole["top_users"][0]["spent_usd"] == pytest.approx(COST * 3)
    bob = usage(client, auth, user="bob")
    assert bob["user"] == "bob" and bob["requests"] == 3
    assert bob["rate_limit"]["remaining"] == 2
    nobody = usage(client, auth, user="nobody")
    assert nobody["requests"] == 0 and nobody["spent_usd"] == 0
    r = client.get("/v1/usage", params={"user": "not a user id"}, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"


def test_the_admin_usage_names_each_keys_top_users(client, request):
    quotas(client, request)
    auth = new_key(client, "app")
    key_id = client.get("/v1/usage", headers=auth).json()["key_id"]
    token = token_for(client, auth, "dave")
    assert generate(client, token, {**BODY, "seed": 1}).status_code == 200
    r = client.get("/v1/admin/usage", headers=ADMIN_HEADERS)
    assert r.status_code == 200, r.text
    rows = {row["key_id"]: row for row in r.json()["data"]}
    while r.json()["has_more"] and key_id not in rows:
        r = client.get(
            "/v1/admin/usage", params={"cursor": r.json()["next_cursor"]}, headers=ADMIN_HEADERS
        )
        rows.update({row["key_id"]: row for row in r.json()["data"]})
    assert rows[key_id]["top_users"] == [
        {"user": "dave", "spent_usd": pytest.approx(COST), "requests": 1}
    ]
