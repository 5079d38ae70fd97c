"""GET /v1/files/...: the signed image URL."""

import math
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from fluxgate.delivery.signing import UrlSigner, parse_signing_keys

from ..support.bodies import generate, generation
from ..support.config import SIGNING_KEYS

pytestmark = pytest.mark.runtimes("local", "worker")


@pytest.fixture
def image(client, auth):
    body = generate(client, auth, generation("a teapot", square=256)).json()
    return body


def with_query(url, **changes):
    parts = urlsplit(url)
    query = {**dict(parse_qsl(parts.query)), **changes}
    return f"{parts.path}?{urlencode(query)}"


def max_age(response):
    """The response's max-age; a real clock (workerd's) may tick once in between."""
    directive, value = response.headers["cache-control"].split(", ")
    assert directive == "private" and value.startswith("max-age=")
    return int(value.removeprefix("max-age="))


def test_serves_the_image_with_caching_headers(client, image, clock):
    url = image["data"][0]["url"]
    r = client.get(url)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/png"
    assert r.headers["content-length"] == str(image["bytes"])
    assert r.headers["etag"] == f'"{image["sha256"]}"'
    expires = int(dict(parse_qsl(urlsplit(url).query))["exp"])
    assert expires - math.ceil(clock()) <= max_age(r) <= 3600
    assert r.headers["x-content-type-options"] == "nosniff"


def signed_again(url: str, signer: UrlSigner, expires: int) -> str:
    """The URL's path signed by the runtime's own key to expire at ``expires``: an aged URL,
    without moving a clock (workerd's cannot be moved)."""
    path = urlsplit(url).path
    return f"{path}?{signer.sign(path, expires)}"


def test_max_age_never_outlives_the_url(client, image, signer, clock):
    expires = int(clock()) + 600
    aged = signed_again(image["data"][0]["url"], signer, expires)
    response = client.get(aged)
    # The runtime reads its clock somewhere between our two readings.
    assert expires - math.ceil(clock()) <= max_age(response) <= 600


def test_if_none_match_gets_304(client, image):
    url = image["data"][0]["url"]
    etag = client.get(url).headers["etag"]
    r = client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    r = client.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    assert r.status_code == 304
    assert client.get(url, headers={"If-None-Match": '"other"'}).status_code == 200


def test_head_gives_headers_without_body(client, image):
    r = client.head(image["data"][0]["url"])
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(image["bytes"])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url.replace("/images/", "/images/0", 1),
        lambda url: with_query(url, exp=str(int(dict(parse_qsl(urlsplit(url).query))["exp"]) + 1)),
        lambda url: with_query(url, sig="A" * 43),
        lambda url: with_query(url, kid="k1"),
        lambda url: urlsplit(url).path,
    ],
)
def test_tampered_urls_get_403(client, image, tamper):
    r = client.get(tamper(image["data"][0]["url"]))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "invalid_signature"


def test_expired_urls_get_403(client, image, signer, clock):
    expired = signed_again(image["data"][0]["url"], signer, int(clock()) - 1)
    r = client.get(expired)
    assert r.status_code == 403 and r.json()["error"]["code"] == "url_expired"


def test_a_signed_url_for_a_missing_object_is_404(client, signer, clock):
    from fluxgate.delivery.files import object_path

    path = object_path("images/" + "0" * 64 + ".png")
    query = signer.sign(path, int(clock()) + 60)
    r = client.get(f"{path}?{query}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_validly_signed_path_outside_the_image_namespace_is_404(client, signer, clock):
    path = "/v1/files/../kv.sqlite3"
    query = signer.sign(path, int(clock()) + 60)
    assert client.get(f"/v1/files/%2E%2E/kv.sqlite3?{query}").status_code in (403, 404)


NEW_KEY = "k3=" + "t" * 40


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(
            200, marks=pytest.mark.secrets(URL_SIGNING_KEYS=f"{NEW_KEY},{SIGNING_KEYS}"), id="kept"
        ),
        pytest.param(403, marks=pytest.mark.secrets(URL_SIGNING_KEYS=NEW_KEY), id="dropped"),
    ],
)
def test_urls_signed_with_a_retired_key_still_work_until_expiry(client, image, status):
    """The runtime runs after a rotation to k3 (keeping, or dropping, the old keys); the URL
    is the one the deployment before the rotation issued, signed with k2."""
    url = urlsplit(image["data"][0]["url"])
    query = dict(parse_qsl(url.query))
    before = UrlSigner(parse_signing_keys(SIGNING_KEYS))
    issued = f"{url.path}?{before.sign(url.path, int(query['exp']), cache_key=query.get('c', ''))}"
    assert "kid=k2" in issued
    assert client.get(issued).status_code == status


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-9", 206, (0, 9)),
        ("bytes=10-", 206, (10, None)),
        ("bytes=-16", 206, (-16, None)),
        ("bytes=5-99999999", 206, (5, None)),
        ("bytes=0-1,4-5", 200, None),  # multiple ranges: the whole file
        ("items=0-3", 200, None),
    ],
)
def test_range_requests(client, image, header, status, expected):
    whole = client.get(image["data"][0]["url"]).content
    r = client.get(image["data"][0]["url"], headers={"Range": header})
    assert r.status_code == status
    assert r.headers["accept-ranges"] == "bytes"
    if expected is None:
        assert r.content == whole
        return
    start, end = expected
    part = whole[start:] if end is None else whole[start : end + 1]
    assert r.content == part
    assert r.headers["content-length"] == str(len(part))
    first = start if start >= 0 else len(whole) + start
    assert r.headers["content-range"] == f"bytes {first}-{first + len(part) - 1}/{len(whole)}"


def test_a_range_past_the_end_is_416(client, image):
    r = client.get(image["data"][0]["url"], headers={"Range": "bytes=99999999-"})
    assert r.status_code == 416
    assert r.headers["content-range"] == f"bytes */{image['bytes']}"
    assert r.json()["error"]["code"] == "range_not_satisfiable"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_file_url_takes_get_and_head_only(client, image, method):
    r = client.request(method, image["data"][0]["url"])
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"] == {
        "code": "method_not_allowed",
        "message": "Files support GET and HEAD only.",
        "type": "invalid_request_error",
        "param": None,
        "request_id": r.headers["x-request-id"],
    }


def test_a_refusal_is_the_one_json_error_body(client, image, signer, clock):
    expired = signed_again(image["data"][0]["url"], signer, int(clock()) - 1)
    r = client.get(expired)
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "error": {
            "code": "url_expired",
            "message": r.json()["error"]["message"],
            "type": "permission_error",
            "param": None,
            "request_id": r.headers["x-request-id"],
        }
    }


@pytest.mark.parametrize(
    "headers", [{"Range": "bytes=0-9"}, {"If-None-Match": '"' + "0" * 64 + '"'}], ids=str
)
def test_a_missing_object_is_404_whatever_the_request(client, signer, clock, headers):
    from fluxgate.delivery.files import object_path

    path = object_path("images/" + "0" * 64 + ".png")
    url = f"{path}?{signer.sign(path, int(clock()) + 60)}"
    r = client.get(url, headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert client.head(url).status_code == 404
