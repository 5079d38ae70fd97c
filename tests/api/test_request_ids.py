"""Request ids and the JSON access log: one id per request, on every response and in every
error body, and one access-log line per request that a support ticket can be matched to."""

import re

import pytest

from ..support.bodies import generation

pytestmark = pytest.mark.runtimes("local", "worker")

GENERATED = re.compile(r"req_[0-9a-f]{24}")


def test_every_response_carries_a_generated_request_id(client, auth):
    answers = [
        client.get("/healthz"),
        client.get("/v2/nothing"),
        client.get("/v1/usage", headers=auth),
        client.get("/v1/usage"),
        client.post("/v1/images/generations", json=generation("a kite"), headers=auth),
        client.get("/v1/files/images/" + "0" * 64 + ".png?exp=1&kid=x&sig=y"),
    ]
    ids = [answer.headers.get("x-request-id") for answer in answers]
    assert all(rid is not None and GENERATED.fullmatch(rid) for rid in ids), ids
    assert len(set(ids)) == len(ids)


def test_error_bodies_carry_the_request_id(client, auth):
    for answer in (
        client.get("/v1/usage"),  # 401 from the app
        client.post("/v1/images/generations", json={"prompt": ""}, headers=auth),  # direct path
        client.get("/v1/files/images/" + "0" * 64 + ".png?exp=1&kid=x&sig=y"),  # file route
        client.request("QUERY", "/v1/usage"),  # refused before any route
    ):
        assert answer.status_code >= 400
        assert answer.json()["error"]["request_id"] == answer.headers["x-request-id"]


@pytest.mark.parametrize(
    "offered", ["3f2b9c1e-7a4d-4e7b-9c55-0b9f0e8d2a11", "app-42/trace:7", "A" * 128]
)
def test_a_sane_client_id_is_kept(client, offered):
    answer = client.get("/healthz", headers={"X-Request-Id": offered})
    assert answer.headers["x-request-id"] == offered


@pytest.mark.parametrize(
    "offered", ["", "has space", 'quote"d', "A" * 129, "-leading-dash", "ünïcode", "a;b"]
)
def test_an_unsafe_client_id_is_replaced(client, offered):
    answer = client.get("/v2/nothing", headers={"X-Request-Id": offered.encode()})
    rid = answer.headers["x-request-id"]
    assert GENERATED.fullmatch(rid) and answer.json()["error"]["request_id"] == rid


def test_one_json_access_line_per_request_without_secrets(client, auth, access_lines):
    body = generation("a lighthouse in fog")
    miss = client.post("/v1/images/generations", json=body, headers=auth)
    hit = client.post("/v1/images/generations", json=body, headers=auth)
    url = miss.json()["data"][0]["url"]
    download = client.get(url)
    refused = client.get("/v1/usage", headers={"Authorization": "Bearer fgk_wrong"})
    assert miss.status_code == hit.status_code == download.status_code == 200
    lines = {line["request_id"]: line for line in access_lines()}
    for answer in (miss, hit, download, refused):
        assert answer.headers["x-request-id"] in lines
    first, second = lines[miss.headers["x-request-id"]], lines[hit.headers["x-request-id"]]
    assert first["route"] == "/v1/images/generations" and first["method"] == "POST"
    assert first["status"] == 200 and first["cache"] == "MISS"
    assert first["cost_usd"] == miss.json()["cost"]["charged_usd"] > 0
    assert first["model_ms"] >= 0 and first["duration_ms"] >= first["model_ms"]
    assert first["key_id"].startswith("key_")
    assert second["cache"] == "HIT" and second["cost_usd"] == 0
    fetched = lines[download.headers["x-request-id"]]
    assert fetched["route"] == "/v1/files/{object_key:path}" and fetched["status"] == 200
    assert lines[refused.headers["x-request-id"]]["status"] == 401
    text = "\n".join(str(line) for line in access_lines())
    signature = re.search(r"sig=([^&]+)", url)
    assert signature is not None and signature.group(1) not in text
    assert auth["Authorization"].split()[1] not in text and "fgk_wrong" not in text
    assert "lighthouse" not in text
