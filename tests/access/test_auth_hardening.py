"""Credentials and admin input, hardened, on both runtimes: admin inputs that reached a
500 (KV metadata, far-future expiries, budgets the ledger cannot hold), client tokens that
outlived a rotation, unthrottled credential guessing, CDN-loaded docs, unpaginated key
listing and weak admin tokens."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from fluxgate.access.rate_limits import AUTH_FAILURES_LIMIT
from fluxgate.local.runtime import build_gateway
from fluxgate.service.settings import ConfigError

from ..support.admin import new_key, put_policy
from ..support.bodies import generate, generation
from ..support.config import ADMIN_TOKEN
from ..support.runtimes import MOVES_CLOCK
from ..support.servers import serve

pytestmark = pytest.mark.runtimes("local", "worker")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
_client_ips = itertools.count(1)


def fresh_ip() -> dict[str, str]:
    """A client address of its own (Workers: CF-Connecting-IP; the local server ignores
    the header and uses the peer, fresh with every test's app)."""
    return {"CF-Connecting-IP": f"198.51.100.{next(_client_ips) % 250 + 1}"}


def create(client, **fields):
    return client.post("/v1/admin/keys", json={"name": "k", **fields}, headers=ADMIN)


# -- admin inputs --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["\U0001f600" * 100, "\u00e9" * 100, "\u4e2d" * 100, "a\x00b", "x" * 101]
)
def test_a_name_that_cannot_fit_kv_metadata_is_a_400_on_name(client, name):
    r = create(client, name=name)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "name"
    key_id = create(client).json()["id"]
    r = client.patch(f"/v1/admin/keys/{key_id}", json={"name": name}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "name"


def test_a_name_of_100_characters_that_fits_is_accepted(client):
    assert create(client, name="\u00e9" * 60).status_code == 201


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expires_at", 253_402_300_800),  # year 10000
        ("expires_at", 10**20),
        ("expires_at", 10**30),
        ("expires_at", 1e20),
        ("expires_in_seconds", 10**30),
        ("expires_in_seconds", 253_402_300_799),
    ],
)
def test_an_expiry_past_year_9999_is_a_400(client, field, value):
    r = create(client, **{field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field
    if field == "expires_at":
        key_id = create(client).json()["id"]
        r = client.patch(f"/v1/admin/keys/{key_id}", json={field: value}, headers=ADMIN)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == field


@pytest.mark.parametrize("budget", [1e308, 1e7, 1e300])
def test_a_budget_the_ledger_cannot_hold_is_refused_everywhere(client, budget):
    r = create(client, overrides={"daily_budget_usd": budget})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "overrides.daily_budget_usd"
    key_id = create(client).json()["id"]
    r = client.patch(
        f"/v1/admin/keys/{key_id}", json={"overrides": {"daily_budget_usd": budget}}, headers=ADMIN
    )
    assert r.status_code == 400, r.text
    current = client.get("/v1/admin/policy", headers=ADMIN).json()
    doc = {
        "version": current["version"] + 1,
        "rate_limits": {},
        "tiers": {"standard": {"rate_limit": None, "daily_budget_usd": budget}},
    }
    r = client.put("/v1/admin/policy", json=doc, headers=ADMIN)
    assert r.status_code == 400, r.text


def test_the_largest_budget_still_generates(client):
    key = new_key(client, overrides={"daily_budget_usd": 1_000_000})
    r = client.post(
        "/v1/images/generations",
        json={"prompt": "a paper crane", "width": 256, "height": 256, "steps": 1},
        headers=key,
    )
    assert r.status_code == 200, r.text
    assert client.get("/v1/usage", headers=key).json()["daily_budget_usd"] == 1_000_000


def test_a_reserved_or_malformed_rule_name_is_refused(client):
    current = client.get("/v1/admin/policy", headers=ADMIN).json()
    for rules in ({"auth_failures": {"limit": 5, "period": 60}}, {"Bad": {"limit": 5}}):
        doc = {"version": current["version"] + 1, "rate_limits": rules}
        r = client.put("/v1/admin/policy", json=doc, headers=ADMIN)
        assert r.status_code == 400, r.text


# -- rotation ends client tokens -----------------------------------------------------------


def _mint(client, key):
    r = client.post("/v1/tokens", json={"subject": "user-1"}, headers=key)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def test_an_immediate_rotation_ends_the_old_keys_client_tokens(client):
    made = create(client).json()
    old = {"Authorization": f"Bearer {made['key']}"}
    token = _mint(client, old)
    assert client.get("/v1/usage", headers=token).status_code == 200
    rotated = client.post(
        f"/v1/admin/keys/{made['id']}/rotate", json={"grace_seconds": 0}, headers=ADMIN
    )
    new = {"Authorization": f"Bearer {rotated.json()['key']}"}
    r = client.get("/v1/usage", headers=token)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "expired_token"
    assert client.get("/v1/usage", headers=_mint(client, new)).status_code == 200


@pytest.mark.runtimes("local", reason=MOVES_CLOCK)
def test_client_tokens_end_with_the_old_keys_grace_period(client, clock):
    made = create(client).json()
    old = {"Authorization": f"Bearer {made['key']}"}
    token = _mint(client, old)
    rotated = client.post(
        f"/v1/admin/keys/{made['id']}/rotate", json={"grace_seconds": 120}, headers=ADMIN
    )
    newer = _mint(client, {"Authorization": f"Bearer {rotated.json()['key']}"})
    assert client.get("/v1/usage", headers=token).status_code == 200
    clock.advance(121)
    assert client.get("/v1/usage", headers=token).json()["error"]["code"] == "expired_token"
    assert client.get("/v1/usage", headers=newer).status_code == 200


# -- failed attempts are throttled ---------------------------------------------------------


def _shut_out(client, ip):
    """Make ``ip`` fail authentication until it is refused with 429."""
    for i in range(AUTH_FAILURES_LIMIT):
        r = client.get("/v1/usage", headers={**ip, "Authorization": f"Bearer fgk_guess{i}"})
        assert r.status_code == 401, r.text
    r = client.get("/v1/usage", headers={**ip, "Authorization": "Bearer fgk_guess-last"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_failed_attempts"
    assert int(r.headers["Retry-After"]) >= 1


def test_repeated_failed_api_key_attempts_are_throttled(client):
    ip = fresh_ip()
    _shut_out(client, ip)
    # Every further failure from that address is refused too, whatever it presents.
    for bad in ("fgk_another-guess", "fgt_forged.token", "not-the-admin-token"):
        r = client.get("/v1/usage", headers={**ip, "Authorization": f"Bearer {bad}"})
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "too_many_failed_attempts"
        assert int(r.headers["Retry-After"]) >= 1
    r = client.get("/v1/admin/keys", headers={**ip, "Authorization": "Bearer wrong"})
    assert r.status_code == 429, r.text


def test_a_served_api_throttles_the_client_whatever_forwarding_headers_say(runtime, tmp_path):
    """The client is the TCP peer locally (uvicorn would take X-Forwarded-For from a
    loopback peer, so a local client could guess forever under made-up addresses) and
    CF-Connecting-IP on Workers: forwarding headers name no one."""
    with serve(runtime, tmp_path) as server, httpx.Client(base_url=server.base) as http:
        statuses = [
            http.get(
                "/v1/usage",
                headers={
                    "Authorization": f"Bearer fgk_guess{n}",
                    "X-Forwarded-For": f"192.0.2.{n + 1}",
                    "Forwarded": f"for=192.0.2.{n + 1}",
                },
            ).status_code
            for n in range(AUTH_FAILURES_LIMIT + 1)
        ]
    assert statuses == [401] * AUTH_FAILURES_LIMIT + [429], statuses


def test_a_shut_out_address_still_lets_valid_credentials_through(client, auth):
    """One address is often many clients (a carrier NAT, the servers behind a proxy): the
    guesses of one do not lock the others out."""
    token = _mint(client, auth)
    ip = fresh_ip()
    _shut_out(client, ip)
    assert client.get("/v1/usage", headers={**ip, **auth}).status_code == 200
    assert client.get("/v1/usage", headers={**ip, **token}).status_code == 200
    assert client.get("/v1/admin/keys", headers={**ip, **ADMIN}).status_code == 200
    made = generate(client, {**ip, **auth}, generation("a lamp", square=256))  # the hot path
    assert made.status_code == 200, made.text
    # ... while the guesser is still refused.
    r = client.get("/v1/usage", headers={**ip, "Authorization": "Bearer fgk_guess-again"})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1


def test_repeated_failed_admin_attempts_are_throttled(client):
    ip = fresh_ip()
    for i in range(AUTH_FAILURES_LIMIT):
        r = client.get("/v1/admin/keys", headers={**ip, "Authorization": f"Bearer wrong-{i}"})
        assert r.status_code == 401, r.text
    r = client.get("/v1/admin/keys", headers={**ip, "Authorization": "Bearer wrong"})
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "too_many_failed_attempts"


def test_valid_credentials_are_never_counted(client, auth):
    ip = fresh_ip()
    for _ in range(AUTH_FAILURES_LIMIT + 5):
        assert client.get("/v1/usage", headers={**ip, **auth}).status_code == 200


# -- /docs, listing, admin token -----------------------------------------------------------


def test_docs_pages_are_off_by_default(client):
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404
    assert client.get("/openapi.json").status_code == 200


@pytest.mark.settings(api_docs=True)
def test_docs_when_enabled_are_under_a_csp(client):
    r = client.get("/docs")
    assert r.status_code == 200
    csp = r.headers["Content-Security-Policy"]
    assert "script-src https://cdn.jsdelivr.net 'sha256-" in csp
    assert "unsafe-inline" not in csp and "default-src 'none'" in csp
    assert client.get("/redoc").status_code == 404


def test_key_listing_is_paginated(client):
    made = {create(client, name=f"k{i}").json()["id"] for i in range(5)}
    first = client.get("/v1/admin/keys", params={"limit": 2}, headers=ADMIN).json()
    assert len(first["data"]) == 2 and first["has_more"] and first["next_cursor"]
    seen = [k["id"] for k in first["data"]]
    cursor = first["next_cursor"]
    while cursor:
        page = client.get(
            "/v1/admin/keys", params={"limit": 2, "cursor": cursor}, headers=ADMIN
        ).json()
        seen += [k["id"] for k in page["data"]]
        cursor = page["next_cursor"]
        assert page["has_more"] == (cursor is not None)
    assert sorted(seen) == sorted(made) and len(seen) == len(made)
    whole = client.get("/v1/admin/keys", headers=ADMIN).json()
    assert {k["id"] for k in whole["data"]} == made and whole["next_cursor"] is None


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "²", "9" * 5000])
def test_a_bad_page_size_is_a_400_on_limit(client, limit):
    r = client.get("/v1/admin/keys", params={"limit": limit}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "limit"


@pytest.mark.parametrize("cursor", ["garbage", "x" * 5000, "\u00e9\u00e9"])
def test_a_foreign_cursor_is_never_a_5xx(client, cursor):
    r = client.get("/v1/admin/keys", params={"cursor": cursor}, headers=ADMIN)
    assert r.status_code in (200, 400), r.text
    if r.status_code == 400:
        assert r.json()["error"]["param"] == "cursor"


@pytest.mark.secrets(ADMIN_TOKEN="too-short-admin-token")
def test_an_admin_token_under_32_characters_is_refused_at_start(runtime, client, tmp_path: Path):
    if runtime == "worker":
        r = client.get("/healthz")
        assert r.status_code == 503
        error = r.json()["error"]
        assert error["code"] == "server_misconfigured" and "ADMIN_TOKEN" in error["message"]
        assert "too-short-admin-token" not in r.text
        return
    env = {"FLUXGATE_ADMIN_TOKEN": "too-short-admin-token", "FLUXGATE_URL_SIGNING_KEYS": ""}
    with pytest.raises(ConfigError, match="FLUXGATE_ADMIN_TOKEN") as raised:
        build_gateway(tmp_path / "data", env)
    assert "too-short-admin-token" not in str(raised.value)


def test_error_bodies_quoting_a_lone_surrogate_still_encode(client):
    body = b'{"name": "x", "\\ud800": 1}'
    r = client.post(
        "/v1/admin/keys", content=body, headers={**ADMIN, "content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] in ("unknown_parameter", "invalid_request")


def test_put_policy_keeps_working_for_normal_documents(client):
    stored = put_policy(client, tiers={"standard": {"daily_budget_usd": 999_999.5}})
    assert stored["tiers"]["standard"]["daily_budget_usd"] == 999_999.5
