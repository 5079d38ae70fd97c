"""JSON request bodies: UTF-8 only, depth-checked, and read only once the credential passed.

An unauthenticated 80 KB request used to kill the Worker's isolate (every request in flight
on it died): a body in UTF-16 hid its nesting from the depth check, which scanned raw
bytes, while the parser guessed the encoding and recursed 20,000 levels deep. The API's
answer now: a JSON body is UTF-8 text (RFC 8259 §8.1; a UTF-8 byte order mark is ignored),
anything else is ``400 invalid_json``; the nesting is measured on that text before it is
parsed; and a route reads no body before it has checked the credential (``401``).

On workerd each test here also shows the isolate survived: the Worker writes one console
line on the first event of each isolate (``src/fluxgate/edge/front/worker.py``), so the count of
those lines stays put unless a request killed the isolate serving it. (the ``workerd``
fixture checks the same after every test on workerd.)
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Sequence

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.requests import Request

from fluxgate.api.app import create_app
from fluxgate.api.body_route import JsonBodyRoute
from fluxgate.api.json_text import MAX_JSON_DEPTH
from fluxgate.service.gateway import Gateway

from ..support.model import ModelDouble
from ..support.workerd import Workerd

pytestmark = pytest.mark.runtimes("local", "worker")

Headers = dict[str, str]
DEPTH = 100_000


def nested(depth: int) -> str:
    """The red team's body: "∀" is the bytes 00 22 in UTF-16-LE, a quote to a byte scanner."""
    return '{"name":"\u2200","x":' + "[" * depth + "]" * depth + "}"


DEEP = nested(DEPTH)  # overflowed the WebAssembly stack: the isolate died
JUST_TOO_DEEP = nested(MAX_JSON_DEPTH)  # 65 levels with the object around the arrays
ENCODINGS = ("utf-8", "utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-32-be")
JSON = {"content-type": "application/json"}

# Every route that takes a JSON body: (method, path, credential, status, code) where the
# status and code answer a hostile JSON body sent with a valid credential.
BODY_ROUTES = [
    ("POST", "/v1/images/generations", "key", 400, "invalid_json"),
    ("POST", "/v1/images/edits", "key", 415, "unsupported_media_type"),  # multipart only
    ("POST", "/v1/provenance/verify", "key", 415, "unsupported_media_type"),  # an image only
    ("POST", "/v1/tokens", "key", 400, "invalid_json"),
    ("POST", "/v1/admin/keys", "admin", 400, "invalid_json"),
    ("PATCH", "/v1/admin/keys/{key_id}", "admin", 400, "invalid_json"),
    ("POST", "/v1/admin/keys/{key_id}/rotate", "admin", 400, "invalid_json"),
    ("PUT", "/v1/admin/policy", "admin", 400, "invalid_json"),
]
# Routes of these methods that take no body: whatever is sent is never read.
BODILESS_ROUTES = [
    ("POST", "/v1/admin/keys/{key_id}/revoke", "admin", 404, "not_found"),
]
ALL_ROUTES = BODY_ROUTES + BODILESS_ROUTES
# Routes whose body is the credential (no header to check first): read capped small.
OPEN_BODY_ROUTES = [("POST", "/v1/tokens/exchange")]
ROUTE_IDS = [f"{method} {path}" for method, path, *_ in ALL_ROUTES]

_client_ips = itertools.count()


def own_address() -> dict[str, str]:
    """A client address of its own, so that refused credentials here do not count against
    other tests' (Workers: CF-Connecting-IP; the local server ignores the header)."""
    return {"CF-Connecting-IP": f"203.0.113.{next(_client_ips) % 250 + 1}"}


def error_of(response: httpx.Response) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]
    return error


def send(
    client: httpx.Client, method: str, path: str, body: bytes, headers: dict[str, str]
) -> httpx.Response:
    url = path.format(key_id="key_that_does_not_exist")
    return client.request(method, url, content=body, headers={**JSON, **headers})


@pytest.fixture
def isolates(runtime: str, request: pytest.FixtureRequest) -> Callable[[], int]:
    """How many isolates have served the Worker since its stack started (on workerd); in
    process there is one interpreter, which a failure would take down with the test."""
    if runtime == "worker":
        stack: Workerd = request.getfixturevalue("workerd")
        return lambda: stack.isolates().started
    return lambda: 1


@pytest.fixture
def alive(client: httpx.Client, isolates: Callable[[], int]) -> Iterator[None]:
    """The test's requests leave the isolate that served the first one serving the next."""
    assert client.get("/healthz").status_code == 200
    before = isolates()
    assert before >= 1  # the first request was counted: the marker is written and seen
    yield
    assert client.get("/healthz").status_code == 200
    assert isolates() == before, "a request killed the Worker's isolate"


@pytest.mark.parametrize(
    ("method", "path", "credential", "status", "code"), ALL_ROUTES, ids=ROUTE_IDS
)
def test_a_body_nested_100000_deep_in_any_encoding_is_refused_and_the_isolate_lives(
    client: httpx.Client,
    auth: Headers,
    admin: Headers,
    alive: None,
    method: str,
    path: str,
    credential: str,
    status: int,
    code: str,
) -> None:
    headers = admin if credential == "admin" else auth
    for text, encoding in itertools.product((DEEP, JUST_TOO_DEEP), ENCODINGS):
        r = send(client, method, path, text.encode(encoding), headers)
        assert (r.status_code, error_of(r)["code"]) == (status, code), (encoding, r.text)


@pytest.mark.parametrize(
    ("method", "path", "credential", "status", "code"), ALL_ROUTES, ids=ROUTE_IDS
)
def test_without_a_valid_credential_no_body_is_read_the_answer_is_401(
    client: httpx.Client,
    admin: Headers,
    alive: None,
    method: str,
    path: str,
    credential: str,
    status: int,
    code: str,
) -> None:
    for encoding in ENCODINGS:
        r = send(client, method, path, DEEP.encode(encoding), {})
        assert r.status_code == 401, (encoding, r.text)
    for bad in ("Bearer fgk_not_a_key", "Bearer not-the-admin-token"):
        r = send(client, method, path, b"{" * 100, {"Authorization": bad, **own_address()})
        assert r.status_code == 401, (bad, r.text)
    if credential == "admin":  # an API key without the admin scope: 403, before the body
        new = client.post("/v1/admin/keys", json={"name": "plain"}, headers=admin)
        key = {"Authorization": f"Bearer {new.json()['key']}"}
        r = send(client, method, path, DEEP.encode("utf-16-le"), key)
        assert r.status_code == 403 and error_of(r)["code"] == "insufficient_scope", r.text


@pytest.mark.parametrize(("method", "path"), OPEN_BODY_ROUTES)
def test_a_route_whose_body_is_the_credential_reads_64_kib_at_most_and_refuses_deep_json(
    client: httpx.Client, alive: None, method: str, path: str
) -> None:
    for encoding in ENCODINGS:
        r = send(client, method, path, DEEP.encode(encoding), own_address())
        assert r.status_code in (400, 413), (encoding, r.text)
        assert error_of(r)["code"] in ("invalid_json", "payload_too_large"), r.text
    r = send(client, method, path, JUST_TOO_DEEP.encode(), own_address())
    assert (r.status_code, error_of(r)["code"]) == (400, "invalid_json"), r.text
    big = b'{"key_id": "' + b"k" * (64 * 1024) + b'"}'
    r = send(client, method, path, big, own_address())
    assert (r.status_code, error_of(r)["code"]) == (413, "payload_too_large"), r.text


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"])
def test_json_that_is_not_utf8_is_400_invalid_json_even_when_shallow(
    client: httpx.Client, admin: Headers, encoding: str
) -> None:
    text = json.dumps({"name": "\u2200 shallow"}, ensure_ascii=False)
    r = client.post("/v1/admin/keys", content=text.encode(encoding), headers={**JSON, **admin})
    error = error_of(r)
    assert (r.status_code, error["code"]) == (400, "invalid_json"), r.text
    assert "UTF-8" in error["message"]


def test_a_utf8_byte_order_mark_is_ignored_but_invalid_utf8_is_refused(
    client: httpx.Client, admin: Headers
) -> None:
    ok = client.post(
        "/v1/admin/keys",
        content=b"\xef\xbb\xbf" + json.dumps({"name": "bom"}).encode(),
        headers={**JSON, **admin},
    )
    assert ok.status_code == 201, ok.text
    for body in (b'{"name": "\xff"}', b'{"name": "\xed\xa0\x80"}', b'{"name": "\xc0\xa2"}'):
        r = client.post("/v1/admin/keys", content=body, headers={**JSON, **admin})
        assert (r.status_code, error_of(r)["code"]) == (400, "invalid_json"), (body, r.text)


def test_a_generation_in_utf16_is_refused_not_generated(
    client: httpx.Client, auth: Headers, ai: ModelDouble, alive: None
) -> None:
    """Small enough for the direct path (which declines it), then refused by the route."""
    body = json.dumps({"prompt": "a lighthouse \u2200"}).encode("utf-16")
    r = client.post("/v1/images/generations", content=body, headers={**JSON, **auth})
    assert (r.status_code, error_of(r)["code"]) == (400, "invalid_json"), r.text
    assert ai.calls == 0


def test_a_form_field_of_json_nested_100000_deep_is_a_field_error(
    client: httpx.Client, auth: Headers, ai: ModelDouble, alive: None
) -> None:
    files = {"prompt": (None, "a lighthouse"), "variants": (None, "[" * DEPTH + "]" * DEPTH)}
    r = client.post("/v1/images/generations", files=files, headers=auth)
    error = error_of(r)
    assert (r.status_code, error["code"], error["param"]) == (400, "invalid_request", "variants")
    assert ai.calls == 0


def _unresolved(_request: Request) -> Gateway:
    raise AssertionError("the app's routes are read, no request is served")


def _api_routes(routes: Sequence[object]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            yield from _api_routes(included.routes)


def test_every_route_that_may_take_a_body_is_tested_here_and_reads_it_after_the_credential() -> (
    None
):
    routes = list(_api_routes(create_app(_unresolved).routes))
    with_body = {
        (method, route.path)
        for route in routes
        for method in route.methods or ()
        if method in ("POST", "PUT", "PATCH")
    }
    assert with_body == {(method, path) for method, path, *_ in ALL_ROUTES + OPEN_BODY_ROUTES}
    # FastAPI parses a body model before any dependency; the routes with one must read it
    # through JsonBodyRoute, after their credential (the generation routes read theirs).
    with_model = [route for route in routes if route.body_field is not None]
    assert with_model
    for route in with_model:
        assert isinstance(route, JsonBodyRoute), route.path
        assert type(route).credential is not JsonBodyRoute.credential, route.path
