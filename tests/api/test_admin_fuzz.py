"""Property-based fuzzing of the admin and token bodies: whatever the body of POST/PATCH
/v1/admin/keys, a rotation, PUT /v1/admin/policy or POST /v1/tokens, the answer is never a
5xx. Derandomized (the same examples every run) and sized to stay well under a minute per
runtime."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ..support.config import ADMIN_TOKEN

pytestmark = pytest.mark.runtimes("local", "worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}", "content-type": "application/json"}
FUZZ = settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Numbers at every edge: huge, tiny, negative, float-for-int, beyond any 64-bit store.
numbers = st.one_of(
    st.sampled_from([0, -1, 2**53, 2**63, 2**64, 10**30, 253_402_300_800, 1e20, 1e308, -1e308]),
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
)
emoji = st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F)
texts = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=emoji, min_size=30, max_size=120),
    st.sampled_from(["", " ", "standard", "admin", "images:generate", "x" * 101, "a\x00b"]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
overrides = st.fixed_dictionaries(
    {},
    optional={
        "rate_limit": st.one_of(st.none(), texts),
        "daily_budget_usd": st.one_of(numbers, st.none()),
        "max_width": numbers,
        "max_height": numbers,
        "max_steps": numbers,
        "max_reference_images": numbers,
        "moderation": st.one_of(texts, st.sampled_from(["off", "fail_open", "fail_closed"])),
    },
)
key_fields = {
    "name": st.one_of(texts, values),
    "scopes": st.one_of(
        st.lists(st.sampled_from(["images:generate", "images:read", "admin"]), max_size=50),
        values,
    ),
    "tier": st.one_of(st.none(), texts, values),
    "expires_at": st.one_of(st.none(), numbers, values),
    "expires_in_seconds": st.one_of(st.none(), numbers),
    "overrides": st.one_of(overrides, values),
}
key_create = st.fixed_dictionaries(
    {"name": key_fields["name"]}, optional={k: v for k, v in key_fields.items() if k != "name"}
)
key_update = st.fixed_dictionaries({}, optional=key_fields)
rotate = st.one_of(
    st.fixed_dictionaries({}, optional={"grace_seconds": st.one_of(numbers, values)}), values
)
tier = st.fixed_dictionaries(
    {},
    optional={
        "rate_limit": st.one_of(st.none(), st.just("standard"), texts),
        "daily_budget_usd": st.one_of(st.none(), numbers),
        "max_steps": numbers,
        "deny_terms": st.lists(texts, max_size=5),
        "deny_patterns": st.lists(st.sampled_from(["a+", "(", "\\bx\\b", "[z-a]"]), max_size=3),
    },
)
policy = st.fixed_dictionaries(
    {"version": st.one_of(numbers, values)},
    optional={
        "default_tier": texts,
        "max_prompt_length": numbers,
        "deny_terms": st.one_of(st.lists(texts, max_size=5), values),
        "rate_limits": st.dictionaries(
            texts,
            st.fixed_dictionaries({"limit": numbers}, optional={"period": numbers}),
            max_size=3,
        ),
        "tiers": st.one_of(st.dictionaries(texts, tier, max_size=3), values),
    },
)
token = st.fixed_dictionaries(
    {},
    optional={
        "subject": st.one_of(texts, values),
        "ttl_seconds": st.one_of(numbers, values),
        "scopes": st.one_of(st.lists(st.sampled_from(["images:generate", "admin"])), values),
    },
)


def encoded(body: Any) -> bytes:
    """JSON as a client may send it: Python's encoder, escapes and all (lone surrogates
    become \\udXXX escapes, which the server's decoder turns back into them)."""
    return json.dumps(body).encode()


def send(client, method: str, path: str, body: Any, headers: dict[str, str]) -> None:
    r = client.request(method, path, content=encoded(body), headers=headers)
    assert r.status_code < 500, f"{method} {path} {body!r} -> {r.status_code} {r.text[:300]}"
    assert r.headers["content-type"].startswith("application/json"), r.text[:200]


def test_admin_bodies_never_reach_a_5xx(client):
    key = client.post("/v1/admin/keys", json={"name": "fuzz"}, headers=ADMIN).json()

    @FUZZ
    @given(key_create)
    @example({"name": "\U0001f600" * 100})  # fits the schema, not KV's 1 KiB of metadata
    @example({"name": "x", "overrides": {"daily_budget_usd": float("inf")}})
    def create(body: Any) -> None:
        send(client, "POST", "/v1/admin/keys", body, ADMIN)

    @FUZZ
    @given(key_update)
    def update(body: Any) -> None:
        send(client, "PATCH", f"/v1/admin/keys/{key['id']}", body, ADMIN)

    @FUZZ
    @given(rotate)
    def rotation(body: Any) -> None:
        made = client.post("/v1/admin/keys", json={"name": "r"}, headers=ADMIN).json()
        send(client, "POST", f"/v1/admin/keys/{made['id']}/rotate", body, ADMIN)

    @FUZZ
    @given(policy)
    def replace_policy(body: Any) -> None:
        send(client, "PUT", "/v1/admin/policy", body, ADMIN)

    for run in (create, update, rotation, replace_policy):
        run()
    r = client.get("/v1/admin/keys", headers=ADMIN)
    assert r.status_code == 200, r.text
    assert client.get("/v1/admin/policy", headers=ADMIN).status_code == 200


def test_token_bodies_never_reach_a_5xx(client, auth):
    caller = {**auth, "content-type": "application/json"}

    @FUZZ
    @given(token)
    def mint(body: Any) -> None:
        send(client, "POST", "/v1/tokens", body, caller)

    mint()


def test_every_accepted_key_still_generates(client):
    """What the admin API accepts, the generation path can use (the 1e308 budget was
    accepted, then every generation of that key was a 500)."""

    @settings(FUZZ, max_examples=30)
    @given(overrides)
    @example({"daily_budget_usd": 1e308})
    def use(body: Any) -> None:
        made = client.post(
            "/v1/admin/keys", content=encoded({"name": "g", "overrides": body}), headers=ADMIN
        )
        assert made.status_code < 500, made.text
        if made.status_code != 201:
            return
        r = client.post(
            "/v1/images/generations",
            json={"prompt": "a paper crane", "width": 256, "height": 256, "steps": 1},
            headers={"Authorization": f"Bearer {made.json()['key']}"},
        )
        assert r.status_code < 500, r.text

    use()
