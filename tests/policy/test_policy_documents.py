"""The policy document: tiers as data, versioned, visible to callers."""

import pytest

from ..support.admin import new_key, put_policy
from ..support.bodies import generation
from ..support.config import ADMIN_TOKEN

pytestmark = pytest.mark.runtimes("local", "worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = generation("a dragon over a castle", square=256, steps=2)

TIERS = {
    "free": {
        "max_width": 512,
        "max_height": 512,
        "max_steps": 4,
        "max_reference_images": 0,
        "daily_budget_usd": 0.5,
        "rate_limit": "slow",
        "deny_terms": ["castle"],
    },
    "pro": {"daily_budget_usd": 50, "rate_limit": "fast"},
}
RATES = {"slow": {"limit": 10, "period": 60}, "fast": {"limit": 600, "period": 60}}


def test_the_default_document_comes_from_the_settings(client):
    doc = client.get("/v1/admin/policy", headers=ADMIN).json()
    assert doc["version"] == 1 and doc["default_tier"] == "standard"
    assert doc["tiers"]["standard"]["daily_budget_usd"] == 10.0
    assert doc["rate_limits"]["standard"] == {"limit": 60, "period": 60}


def test_get_policy_shows_the_caller_what_applies(client):
    put_policy(client, default_tier="free", tiers=TIERS, rate_limits=RATES, deny_terms=["gore"])
    free = client.get("/v1/policy", headers=new_key(client, "f")).json()
    assert free["tier"] == "free" and free["policy_version"] == 2
    assert free["limits"]["max_steps"] == 4 and free["rate_limit"] == {"limit": 10, "period": 60}
    assert free["deny_rules"] == 2  # counts only; the terms themselves stay private
    assert "gore" not in str(free) and "castle" not in str(free)
    pro = client.get("/v1/policy", headers=new_key(client, "p", tier="pro")).json()
    assert pro["tier"] == "pro" and pro["limits"]["daily_budget_usd"] == 50


def test_tier_limits_and_tier_deny_rules_apply(client):
    put_policy(client, default_tier="free", tiers=TIERS, rate_limits=RATES)
    free, pro = new_key(client, "f"), new_key(client, "p", tier="pro")
    r = client.post("/v1/images/generations", json={**BODY, "steps": 8}, headers=free)
    assert r.status_code == 403 and r.json()["error"]["reason"] == "max_steps"
    r = client.post("/v1/images/generations", json=BODY, headers=free)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "denied_term"
    assert client.post("/v1/images/generations", json=BODY, headers=pro).status_code == 200


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"version": 1}, "version"),
        ({"tiers": {"gold": {}}, "default_tier": "silver"}, "default_tier"),
        ({"tiers": {"standard": {"rate_limit": "nope"}}}, "rate limit"),
        ({"rate_limits": {"standard": {"limit": 5, "period": 30}}}, "period"),
        ({"deny_patterns": ["("]}, "regular expression"),
        ({"tiers": {"Bad Name": {}}, "default_tier": "Bad Name"}, "must match"),
        ({"surprise": True}, "surprise"),
    ],
)
def test_invalid_documents_are_refused_and_nothing_changes(client, document, fragment):
    current = client.get("/v1/admin/policy", headers=ADMIN).json()
    body = {"version": current["version"] + 1, **document}
    r = client.put("/v1/admin/policy", json=body, headers=ADMIN)
    assert r.status_code in (400, 409), r.text
    assert fragment in r.text
    assert client.get("/v1/admin/policy", headers=ADMIN).json() == current


def test_a_stricter_policy_version_refuses_what_is_cached(client, auth, ai):
    first = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert first.status_code == 200 and ai.calls == 1
    put_policy(client, deny_terms=["dragon"])
    r = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert r.status_code == 400 and r.json()["error"]["reason"] == "denied_term"
    put_policy(client, deny_terms=[])  # looser again: the cached image is served, not repaid
    again = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert again.headers["x-cache"] == "HIT" and ai.calls == 1


def test_a_tier_limit_lowered_later_refuses_a_cached_size(client, auth):
    big = {**BODY, "width": 1024}
    assert client.post("/v1/images/generations", json=big, headers=auth).status_code == 200
    put_policy(client, tiers={"standard": {"max_width": 512}})
    r = client.post("/v1/images/generations", json=big, headers=auth)
    assert r.status_code == 403 and r.json()["error"]["code"] == "tier_limit_exceeded"


def test_a_key_whose_tier_disappears_falls_back_to_the_default(client):
    put_policy(
        client, tiers={**TIERS, "standard": {}}, rate_limits={**RATES, "standard": {"limit": 5}}
    )
    pro = new_key(client, "p", tier="pro")
    put_policy(client)  # back to a single "standard" tier
    assert client.get("/v1/policy", headers=pro).json()["tier"] == "standard"
