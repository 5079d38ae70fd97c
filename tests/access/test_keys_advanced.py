"""Key records: scopes, expiry, tiers, overrides and rotation."""

import pytest

from ..support.admin import new_key
from ..support.bodies import generation
from ..support.clock import just_now
from ..support.config import ADMIN_TOKEN
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BODY = generation("a kite", square=256, steps=2)


def create(client, **fields):
    r = client.post("/v1/admin/keys", json={"name": "k", **fields}, headers=ADMIN)
    assert r.status_code == 201, r.text
    return r.json()


def bearer(key):
    return {"Authorization": f"Bearer {key['key']}"}


def test_new_keys_get_generate_and_read_scopes_by_default(client):
    key = create(client)
    assert key["scopes"] == ["images:generate", "images:read"]
    assert key["tier"] is None and key["expires_at"] is None and key["overrides"] == {}


def test_a_read_only_key_cannot_generate(client):
    key = create(client, scopes=["images:read"])
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(key))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "insufficient_scope"
    assert 'scope="images:generate"' in r.headers["www-authenticate"]


def test_a_generate_only_key_cannot_read_records(client):
    key = create(client, scopes=["images:generate"])
    made = client.post("/v1/images/generations", json=BODY, headers=bearer(key)).json()
    r = client.get(f"/v1/images/{made['id']}", headers=bearer(key))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


def test_an_admin_scoped_key_can_administer_and_others_cannot(client):
    boss = create(client, scopes=["admin"])
    r = client.post("/v1/admin/keys", json={"name": "by boss"}, headers=bearer(boss))
    assert r.status_code == 201
    plain = create(client)
    r = client.get("/v1/admin/keys", headers=bearer(plain))
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize("scopes", [[], ["images:write"], ["root"]])
def test_unknown_or_empty_scopes_are_refused(client, scopes):
    r = client.post("/v1/admin/keys", json={"name": "x", "scopes": scopes}, headers=ADMIN)
    assert r.status_code == 400


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_an_expired_key_is_401(client, clock):
    key = create(client, expires_in_seconds=60)
    assert key["expires_at"] in just_now(clock, 60)
    assert client.post("/v1/images/generations", json=BODY, headers=bearer(key)).status_code == 200
    clock.advance(60)
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(key))
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_an_absolute_expiry_is_kept(client, clock):
    key = create(client, expires_at=int(clock()) + 10)
    clock.advance(11)
    assert client.get("/v1/usage", headers=bearer(key)).status_code == 401


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_rotation_keeps_the_old_key_valid_for_the_grace_period(client, clock):
    old = create(client)
    r = client.post(
        f"/v1/admin/keys/{old['id']}/rotate", json={"grace_seconds": 300}, headers=ADMIN
    )
    assert r.status_code == 201
    new = r.json()
    assert new["id"] == old["id"] and new["key"] != old["key"]
    for key in (old, new):
        assert client.get("/v1/usage", headers=bearer(key)).status_code == 200
    clock.advance(300)
    r = client.get("/v1/usage", headers=bearer(old))
    assert r.status_code == 401 and r.json()["error"]["code"] == "expired_api_key"
    assert client.get("/v1/usage", headers=bearer(new)).status_code == 200


def test_rotation_without_grace_retires_the_old_key_at_once(client):
    old = create(client)
    new = client.post(
        f"/v1/admin/keys/{old['id']}/rotate", json={"grace_seconds": 0}, headers=ADMIN
    ).json()
    assert client.get("/v1/usage", headers=bearer(old)).status_code == 401
    assert client.get("/v1/usage", headers=bearer(new)).status_code == 200


def test_revoking_a_rotated_key_revokes_every_token(client):
    old = create(client)
    new = client.post(f"/v1/admin/keys/{old['id']}/rotate", headers=ADMIN).json()
    client.post(f"/v1/admin/keys/{old['id']}/revoke", headers=ADMIN)
    for key in (old, new):
        r = client.get("/v1/usage", headers=bearer(key))
        assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"


def test_update_changes_tier_overrides_and_scopes(client):
    key = create(client)
    r = client.patch(
        f"/v1/admin/keys/{key['id']}",
        headers=ADMIN,
        json={"scopes": ["images:read"], "overrides": {"max_steps": 4}},
    )
    assert r.status_code == 200
    assert r.json()["scopes"] == ["images:read"] and r.json()["overrides"] == {"max_steps": 4}
    assert client.get(f"/v1/admin/keys/{key['id']}", headers=ADMIN).json()["overrides"] == {
        "max_steps": 4
    }
    r = client.post("/v1/images/generations", json=BODY, headers=bearer(key))
    assert r.status_code == 403  # the change reached the key's token entry


def test_an_unknown_tier_is_refused(client):
    r = client.post("/v1/admin/keys", json={"name": "x", "tier": "gold"}, headers=ADMIN)
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_tier"


@pytest.mark.parametrize(
    "overrides", [{"max_steps": 0}, {"max_width": 5000}, {"daily_budget_usd": -1}, {"x": 1}]
)
def test_invalid_overrides_are_refused(client, overrides):
    r = client.post("/v1/admin/keys", json={"name": "x", "overrides": overrides}, headers=ADMIN)
    assert r.status_code == 400


def test_per_key_overrides_cap_the_request(client):
    auth = new_key(client, overrides={"max_steps": 4, "max_width": 512, "max_reference_images": 0})
    for change, param in (({"steps": 5}, "steps"), ({"width": 768}, "width")):
        r = client.post("/v1/images/generations", json={**BODY, **change}, headers=auth)
        assert r.status_code == 403
        error = r.json()["error"]
        assert (error["code"], error["param"]) == ("tier_limit_exceeded", param)
    ok = client.post("/v1/images/generations", json={**BODY, "steps": 4}, headers=auth)
    assert ok.status_code == 200
