"""GET /v1/images/{id}: a generation's metadata, owned by the caller."""

import pytest

from ..support.admin import new_key
from ..support.clock import just_now
from ..support.runtimes import MOVES_CLOCK

pytestmark = pytest.mark.runtimes("local", "worker")


def generated(client, auth):
    body = {"prompt": "a boat", "width": 256, "height": 256}
    return client.post("/v1/images/generations", headers=auth, json=body).json()


def looked_up_with_a_url_signed_now(client, auth, clock, made):
    """``GET /v1/images/{id}`` of ``made``: the same image, with a URL that works and
    expires an hour from now."""
    r = client.get(f"/v1/images/{made['id']}", headers=auth)
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == made["id"] and body["sha256"] == made["sha256"]
    assert body["data"][0]["expires_at"] in just_now(clock, 3600)
    assert client.get(body["data"][0]["url"]).status_code == 200
    return body


def test_returns_the_generation_with_a_url_signed_now(client, auth, clock):
    looked_up_with_a_url_signed_now(client, auth, clock, generated(client, auth))


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_returns_the_generation_with_a_fresh_url(client, auth, clock):
    made = generated(client, auth)
    clock.advance(4000)  # the first URL has expired by now
    looked_up_with_a_url_signed_now(client, auth, clock, made)
    assert client.get(made["data"][0]["url"]).status_code == 403


def test_another_keys_generation_is_not_found(client, auth):
    made = client.post("/v1/images/generations", headers=auth, json={"prompt": "a boat"}).json()
    other = new_key(client, "other")
    r = client.get(f"/v1/images/{made['id']}", headers=other)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_unknown_and_malformed_ids_are_not_found(client, auth):
    for image_id in ("img_" + "0" * 24, "nope", "img_../../x", "x" * 600):
        assert client.get(f"/v1/images/{image_id}", headers=auth).status_code == 404


def test_requires_an_api_key(client):
    assert client.get("/v1/images/img_" + "0" * 24).status_code == 401
