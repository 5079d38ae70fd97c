"""CORS for browser apps: off by default, preflights answered for configured origins, the
headers a client paces and debugs with exposed; never credentials mode."""

import pytest

from fluxgate.access.cors import CorsConfigError, parse_origins
from fluxgate.service.settings import ConfigError, Settings

from ..support.bodies import generation

pytestmark = pytest.mark.runtimes("local", "worker")

APP = "https://app.example.com"
OTHER = "https://evil.example.net"


def preflight(client, origin, method="POST", headers=None):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers is not None:
        asked["Access-Control-Request-Headers"] = headers
    return client.options("/v1/images/generations", headers=asked)


def test_by_default_no_origin_is_allowed(client, auth):
    answer = preflight(client, APP)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "cors_origin_not_allowed"
    assert "access-control-allow-origin" not in answer.headers
    plain = client.get("/v1/usage", headers={**auth, "Origin": APP})
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


@pytest.mark.settings(cors_allowed_origins=f"{APP}, http://localhost:5173")
def test_a_configured_origin_gets_its_preflight_answered(client):
    answer = preflight(client, APP)
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["access-control-allow-origin"] == APP
    assert "Origin" in answer.headers["vary"]
    assert "POST" in answer.headers["access-control-allow-methods"]
    allowed = answer.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "prefer", "idempotency-key"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in answer.headers
    assert answer.headers["x-request-id"]
    assert preflight(client, "http://localhost:5173").status_code == 204


@pytest.mark.settings(cors_allowed_origins=APP)
def test_other_origins_are_refused_and_get_no_cors_headers(client, auth):
    answer = preflight(client, OTHER)
    assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers
    plain = client.get("/v1/usage", headers={**auth, "Origin": OTHER})
    assert "access-control-allow-origin" not in plain.headers


@pytest.mark.settings(cors_allowed_origins=APP)
def test_with_named_origins_every_response_varies_on_origin(client, auth):
    """A copy cached for a request without ``Origin`` (an ``<img>`` load) must not be
    reused for an allowed page's ``fetch``, which needs the CORS headers."""
    made = client.post("/v1/images/generations", json=generation("a kite"), headers=auth)
    for answer in (
        made,
        client.get(made.json()["data"][0]["url"]),
        client.get("/v1/usage", headers={**auth, "Origin": OTHER}),
    ):
        assert "Origin" in answer.headers["vary"]
        assert "access-control-allow-origin" not in answer.headers


@pytest.mark.settings(cors_allowed_origins=APP)
def test_a_preflight_allows_the_request_headers_a_client_asks_for(client):
    asked = "authorization, content-type, x-stainless-lang, x-stainless-retry-count"
    answer = preflight(client, APP, headers=asked)
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-headers"] == asked
    odd = preflight(client, APP, headers="bad header, (x)")  # not a header list: ours
    assert "Authorization" in odd.headers["access-control-allow-headers"]


@pytest.mark.settings(cors_allowed_origins=APP)
def test_responses_to_an_allowed_origin_expose_the_useful_headers(client, auth):
    answer = client.post(
        "/v1/images/generations", json=generation("a red kite"), headers={**auth, "Origin": APP}
    )
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == APP
    exposed = {
        h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
    }
    assert {
        "x-request-id",
        "x-cache",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
        "retry-after",
        "location",
    } <= exposed
    refused = client.get("/v1/usage", headers={"Origin": APP})  # errors are readable too
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == APP
    download = client.get(answer.json()["data"][0]["url"], headers={"Origin": APP})
    assert download.status_code == 200 and download.headers["access-control-allow-origin"] == APP


@pytest.mark.settings(cors_allowed_origins="*")
def test_any_origin_with_a_star(client):
    answer = preflight(client, OTHER)
    assert answer.status_code == 204 and answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers


def test_an_options_request_that_is_not_a_preflight_is_405(client):
    assert client.options("/v1/images/generations").status_code == 405


@pytest.mark.parametrize(
    ("spec", "origins"),
    [
        ("", ()),
        ("*", ("*",)),
        (
            "https://a.example.com,http://localhost:8080",
            ("https://a.example.com", "http://localhost:8080"),
        ),
        ('["https://a.example.com"]', ("https://a.example.com",)),
    ],
)
def test_origin_lists_parse(spec, origins):
    assert parse_origins(spec) == origins


@pytest.mark.parametrize(
    "spec",
    [
        "https://a.example.com/",
        "a.example.com",
        "https://A.example.com",
        "*,https://x.io",
        "ftp://x.io",
    ],
)
def test_bad_origin_lists_stop_start_up(spec):
    with pytest.raises(CorsConfigError):
        parse_origins(spec)
    with pytest.raises(ConfigError, match="CORS_ALLOWED_ORIGINS"):
        Settings.from_mapping({"CORS_ALLOWED_ORIGINS": spec})
