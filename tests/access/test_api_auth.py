"""API keys and the admin endpoints."""

import pytest

from ..support.admin import new_key
from ..support.bodies import generation
from ..support.config import ADMIN_TOKEN

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("x", square=256)


def test_missing_key_is_401_with_a_bearer_challenge(client):
    r = client.post("/v1/images/generations", json=BODY)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="fluxgate"'
    assert r.json()["error"]["code"] == "missing_api_key"


@pytest.mark.parametrize(
    "header", ["Bearer fgk_unknown", "Bearer " + "x" * 5000, "Basic abc", "Bearer"]
)
def test_unknown_or_malformed_keys_are_401(client, header):
    r = client.post("/v1/images/generations", json=BODY, headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json()["error"]["code"] in ("invalid_api_key", "missing_api_key")
    assert "Bearer" in r.headers["www-authenticate"]


def test_the_admin_token_is_not_an_api_key(client, admin):
    r = client.post("/v1/images/generations", json=BODY, headers=admin)
    assert r.status_code == 401


def test_a_created_key_works_and_is_stored_only_as_a_hash(client, admin, storage):
    created = client.post("/v1/admin/keys", json={"name": "mobile"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["key"].startswith("fgk_") and len(body["key"]) > 40
    assert body["name"] == "mobile" and body["revoked"] is False
    r = client.post(
        "/v1/images/generations", json=BODY, headers={"Authorization": f"Bearer {body['key']}"}
    )
    assert r.status_code == 200
    assert body["key"] not in repr(storage.kv_dump())


def test_list_never_shows_keys(client, admin):
    token = new_key(client, "a")["Authorization"].split()[1]
    listed = client.get("/v1/admin/keys", headers=admin)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()["data"]] == ["a"]
    assert token not in listed.text and "key" not in listed.json()["data"][0]


def test_a_revoked_key_is_refused(client, admin):
    auth = new_key(client, "soon revoked")
    key_id = client.get("/v1/admin/keys", headers=admin).json()["data"][0]["id"]
    r = client.post(f"/v1/admin/keys/{key_id}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["revoked"] is True and r.json()["revoked_at"]
    r = client.post("/v1/images/generations", json=BODY, headers=auth)
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_api_key"
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    again = client.post(f"/v1/admin/keys/{key_id}/revoke", headers=admin)
    assert again.status_code == 200  # idempotent


def test_revoking_an_unknown_key_is_404(client, admin):
    r = client.post("/v1/admin/keys/key_0000/revoke", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("headers", "code"),
    [({}, "missing_admin_token"), ({"Authorization": "Bearer wrong"}, "invalid_admin_token")],
)
def test_admin_endpoints_need_the_admin_token(client, headers, code):
    for method, path in (
        ("POST", "/v1/admin/keys"),
        ("GET", "/v1/admin/keys"),
        ("POST", "/v1/admin/keys/key_1/revoke"),
    ):
        r = client.request(method, path, json={"name": "x"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code


@pytest.mark.secrets(ADMIN_TOKEN=None)
def test_admin_is_off_without_an_admin_token(client):
    r = client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "admin_disabled"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_request"),
        ({"name": ""}, "invalid_request"),
        ({"name": "x" * 101}, "invalid_request"),
        ({"name": "a", "x": 1}, "unknown_parameter"),
    ],
)
def test_key_creation_validates_its_body(client, admin, body, code):
    r = client.post("/v1/admin/keys", json=body, headers=admin)
    assert r.status_code == 400 and r.json()["error"]["code"] == code


def test_key_creation_with_broken_json(client, admin):
    r = client.post(
        "/v1/admin/keys", content=b"{", headers={**admin, "content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
