"""Request-rate limits per key and per end user; cache hits are not counted."""

import pytest

from ..support.bodies import generate, generation

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a lamp", square=256, steps=1)


def tight(limit=3, period=60):
    """The default rule, tightened: the test's policy and, on workerd, its binding."""
    return pytest.mark.rate_limits({"standard": {"limit": limit, "period": period}})


@tight()
def test_over_the_limit_is_429_with_ratelimit_headers(client, auth, clock, ai, rate_limit_rules):
    rate_limit_rules()
    for seed in range(3):
        assert generate(client, auth, {**BODY, "seed": seed}).status_code == 200
    r = generate(client, auth, {**BODY, "seed": 99})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert r.headers["ratelimit-limit"] == "3"
    assert r.headers["ratelimit-remaining"] == "0"
    reset = int(r.headers["ratelimit-reset"])
    assert 1 <= reset <= 60 and r.headers["retry-after"] == str(reset)
    assert "w=60" in r.headers["ratelimit-policy"]
    assert ai.calls == 3


@tight(limit=3, period=60)
def test_successful_model_calls_tell_the_client_how_to_pace_itself(
    client, auth, runtime, rate_limit_rules
):
    """``RateLimit-*`` on every model-bound 200. The Workers binding answers only
    allowed/refused: there the remaining count is absent and the reset is the period (an
    upper bound); the local counter knows both."""
    rate_limit_rules()
    first = generate(client, auth, {**BODY, "seed": 1})
    second = generate(client, auth, {**BODY, "seed": 2})
    for answer in (first, second):
        assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS"
        assert answer.headers["ratelimit-limit"] == "3"
        assert answer.headers["ratelimit-policy"] == '3;w=60;name="standard"'
        assert 1 <= int(answer.headers["ratelimit-reset"]) <= 60
    if runtime == "local":
        assert [first.headers["ratelimit-remaining"], second.headers["ratelimit-remaining"]] == [
            "2",
            "1",
        ]
    else:
        assert "ratelimit-remaining" not in first.headers
        assert first.headers["ratelimit-reset"] == "60"
    hit = generate(client, auth, {**BODY, "seed": 1})  # not counted, so nothing to say
    assert hit.headers["x-cache"] == "HIT" and "ratelimit-limit" not in hit.headers
    queued = client.post(
        "/v1/images/generations",
        json={**BODY, "seed": 3},
        headers={**auth, "Prefer": "respond-async"},
    )
    assert queued.status_code == 202 and queued.headers["ratelimit-limit"] == "3"
    if runtime == "local":
        assert queued.headers["ratelimit-remaining"] == "0"


@tight(limit=1, period=10)
@pytest.mark.runtimes("local", reason="moves the clock past the window; workerd's cannot be moved")
def test_the_window_resets(client, auth, clock, rate_limit_rules):
    rate_limit_rules()
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, auth, {**BODY, "seed": 2}).status_code == 429
    clock.advance(10)
    assert generate(client, auth, {**BODY, "seed": 3}).status_code == 200


@tight(limit=1)
def test_cache_hits_do_not_count(client, auth, ai, rate_limit_rules):
    rate_limit_rules()
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    for _ in range(5):
        r = generate(client, auth, {**BODY, "seed": 1})
        assert r.status_code == 200 and r.headers["x-cache"] == "HIT"
    assert generate(client, auth, {**BODY, "seed": 2}).status_code == 429


@tight(limit=1)
def test_keys_are_limited_independently(client, auth, rate_limit_rules):
    from ..support.admin import new_key

    rate_limit_rules()
    assert generate(client, auth, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, auth, {**BODY, "seed": 2}).status_code == 429
    assert generate(client, new_key(client, "other"), {**BODY, "seed": 3}).status_code == 200


@tight(limit=2)
def test_end_users_share_their_key_limit_and_have_their_own(client, auth, rate_limit_rules):
    rate_limit_rules()

    def token(subject):
        t = client.post("/v1/tokens", json={"subject": subject}, headers=auth).json()["token"]
        return {"Authorization": f"Bearer {t}"}

    alice, bob = token("alice"), token("bob")
    assert generate(client, alice, {**BODY, "seed": 1}).status_code == 200
    assert generate(client, alice, {**BODY, "seed": 2}).status_code == 200
    r = generate(client, alice, {**BODY, "seed": 3})  # alice's own limit, and the key's
    assert r.status_code == 429
    # the key is spent for everyone
    assert generate(client, bob, {**BODY, "seed": 4}).status_code == 429


@tight(limit=1)
def test_a_tier_without_a_rate_limit_is_unlimited(client, auth, rate_limit_rules):
    rate_limit_rules(tiers={"standard": {"rate_limit": None}})
    for seed in range(4):
        assert generate(client, auth, {**BODY, "seed": seed}).status_code == 200


@pytest.mark.rate_limits(
    {"standard": {"limit": 1, "period": 60}, "burst": {"limit": 5, "period": 60}}
)
def test_a_key_override_selects_another_rule(client, rate_limit_rules):
    from ..support.admin import new_key

    rate_limit_rules()
    fast = new_key(client, "fast", overrides={"rate_limit": "burst"})
    for seed in range(5):
        assert generate(client, fast, {**BODY, "seed": seed}).status_code == 200
    assert generate(client, fast, {**BODY, "seed": 6}).status_code == 429


def test_a_rule_without_its_binding_on_workers_claims_no_limit(client, runtime):
    """A Worker deployed without a rule's ``RATE_LIMIT_<NAME>`` binding does not enforce
    it (logged; the budget still caps spend), so its answers do not advertise it either."""
    from ..support.admin import new_key, put_policy

    if runtime == "local":
        pytest.skip("the local limiter counts every rule of the document")
    rules = {"standard": {"limit": 60, "period": 60}, "unbound": {"limit": 2, "period": 60}}
    put_policy(client, rate_limits=rules)
    key = new_key(client, "unbound", overrides={"rate_limit": "unbound"})
    for seed in range(3):  # over the document's limit, and still served
        answer = generate(client, key, {**BODY, "seed": seed})
        assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS"
        assert "ratelimit-limit" not in answer.headers
