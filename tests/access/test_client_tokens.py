"""Client tokens: a backend mints short-lived per-user tokens for its mobile app."""

from dataclasses import replace

import pytest

from fluxgate.access.tokens import mint as mint_token
from fluxgate.access.tokens import verify

from ..support.admin import new_key
from ..support.bodies import generation
from ..support.clock import just_now
from ..support.config import ADMIN_TOKEN
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a beach hut", square=256, steps=2)


def mint(client, auth, **fields):
    r = client.post("/v1/tokens", json={"subject": "user-42", **fields}, headers=auth)
    assert r.status_code == 201, r.text
    return r.json()


def bearer(token):
    return {"Authorization": f"Bearer {token['token']}"}


def test_a_minted_token_generates_as_its_end_user(client, auth, clock):
    token = mint(client, auth, ttl_seconds=600)
    assert token["token"].startswith("fgt_") and token["token_type"] == "Bearer"
    assert token["expires_at"] in just_now(clock, 600) and token["subject"] == "user-42"
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(token))
    assert r.status_code == 200
    assert client.get(f"/v1/images/{r.json()['id']}", headers=bearer(token)).status_code == 200


def test_token_lifetime_is_capped_at_an_hour(client, auth, clock):
    assert mint(client, auth, ttl_seconds=86400)["expires_at"] in just_now(clock, 3600)


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_an_expired_token_is_401(client, auth, clock):
    token = mint(client, auth, ttl_seconds=60)
    clock.advance(60)
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_token"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
        lambda t: t.replace("fgt_", "fgt_x", 1),
        lambda t: t.split(".")[0],
    ],
)
def test_a_tampered_token_is_401(client, auth, tamper):
    token = mint(client, auth)
    r = client.get("/v1/usage", headers={"Authorization": f"Bearer {tamper(token['token'])}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_token"


@pytest.mark.settings(token_audience="other-app")
def test_a_token_for_another_audience_is_refused(client, auth, signer, clock):
    # The same token as a deployment with the same keys, for the audience "fluxgate", mints.
    ours = verify(signer, mint(client, auth)["token"], audience="other-app", now=clock())
    token = {"token": mint_token(signer, replace(ours, audience="fluxgate"))}
    r = client.get("/v1/usage", headers=bearer(token))
    assert r.status_code == 401 and "audience" in r.json()["error"]["message"]


def test_revoking_the_key_kills_its_tokens(client, auth):
    token = mint(client, auth)
    key_id = client.get("/v1/usage", headers=auth).json()["key_id"]
    client.post(
        f"/v1/admin/keys/{key_id}/revoke", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    r = client.get("/v1/usage", headers=bearer(token))
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def test_tokens_cannot_mint_tokens_or_administer(client, auth):
    token = mint(client, auth)
    r = client.post("/v1/tokens", json={"subject": "x"}, headers=bearer(token))
    assert r.status_code == 403
    admin_key = new_key(client, "boss", scopes=["admin", "images:generate"])
    admin_token = mint(client, admin_key)
    assert client.get("/v1/admin/keys", headers=bearer(admin_token)).status_code in (401, 403)


def test_token_scopes_are_narrowed_to_the_request_and_the_key(client):
    key = new_key(client, "gen-only", scopes=["images:generate"])
    token = mint(client, key, scopes=["images:generate", "images:read"])
    assert token["scopes"] == ["images:generate"]
    read_only = mint(client, new_key(client, "both"), scopes=["images:read"])
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(read_only))
    assert r.status_code == 403


@pytest.mark.parametrize("subject", ["", "has space", "x" * 129, "ünicode"])
def test_subjects_are_validated(client, auth, subject):
    r = client.post("/v1/tokens", json={"subject": subject}, headers=auth)
    assert r.status_code == 400


def test_cache_and_records_are_per_end_user(client, auth, ai):
    alice, bob = mint(client, auth, subject="alice"), mint(client, auth, subject="bob")
    a = client.post("/v1/images/generations", json=BODY, headers=bearer(alice))
    assert a.headers["x-cache"] == "MISS"
    assert (
        client.post("/v1/images/generations", json=BODY, headers=bearer(alice)).headers["x-cache"]
        == "HIT"
    )
    b = client.post("/v1/images/generations", json=BODY, headers=bearer(bob))
    assert b.headers["x-cache"] == "MISS" and ai.calls == 2
    assert client.get(f"/v1/images/{a.json()['id']}", headers=bearer(bob)).status_code == 404
    # the key holder (the app's backend) can read its end users' generations
    assert client.get(f"/v1/images/{a.json()['id']}", headers=auth).status_code == 200
