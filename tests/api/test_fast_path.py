"""The fast path: which generation requests skip the web framework, and that it changes
nothing a client can see.

A JSON ``POST /v1/images/generations`` that declares its length is answered in front of
FastAPI (``api/fast_path.py`` locally, ``edge/front/serve.py`` on the Worker), by the same
handler the route calls (``api/generate.py``). Which requests take it is decided from the
request line and headers alone, before anything is read or counted; ``FAST_PATH=false``
sends every request through FastAPI.

The parity tests send each request twice, once with its length declared and once chunked
(the head alone sends a chunked body through FastAPI), under both settings of
``FAST_PATH``, and compare status, headers and body byte for byte.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fluxgate.access.rate_limits import FailedAttempts
from fluxgate.api.app import create_app
from fluxgate.api.generate import HEADERS, GenerationHandler, RequestView, takes_fast_path
from fluxgate.api.starlette_view import form_parts
from fluxgate.service.gateway import Gateway
from fluxgate.service.settings import Settings

from ..support.admin import new_key
from ..support.bodies import generation
from ..support.model import ModelDouble

pytestmark = pytest.mark.runtimes("local", "worker")

PATH = "/v1/images/generations"
BODY = generation("a kite over the dunes", square=256, steps=4, seed=3)
JSON_HEADERS = {"content-type": "application/json"}

# The head of a JSON generation that takes the fast path: every case below changes one thing.
FAST = {"content-type": "application/json", "content-length": "120"}


@pytest.mark.parametrize(
    ("method", "path", "headers", "settings", "fast"),
    [
        ("POST", PATH, FAST, {}, True),
        ("POST", PATH, {**FAST, "content-type": "application/json; charset=utf-8"}, {}, True),
        ("POST", PATH, {**FAST, "content-type": "Application/JSON"}, {}, True),
        # what the handler answers whichever way it came: no credential, a retry, a job
        ("POST", PATH, {**FAST, "idempotency-key": "k1", "prefer": "respond-async"}, {}, True),
        ("POST", PATH, {**FAST, "authorization": "Bearer fgk_x"}, {}, True),
        # not a JSON generation with a declared length within the body limit
        ("GET", PATH, FAST, {}, False),
        ("PUT", PATH, FAST, {}, False),
        ("POST", "/v1/images/edits", FAST, {}, False),
        ("POST", PATH + "/", FAST, {}, False),
        ("POST", PATH, {**FAST, "content-type": "multipart/form-data; boundary=x"}, {}, False),
        ("POST", PATH, {**FAST, "content-type": "text/plain"}, {}, False),
        ("POST", PATH, {"content-type": "application/json"}, {}, False),
        ("POST", PATH, {**FAST, "transfer-encoding": "chunked"}, {}, False),
        ("POST", PATH, {**FAST, "content-length": "12 "}, {}, True),
        ("POST", PATH, {**FAST, "content-length": "+12"}, {}, False),
        ("POST", PATH, {**FAST, "content-length": "65537"}, {"max_body_bytes": 65536}, False),
        ("POST", PATH, {**FAST, "content-length": "65536"}, {"max_body_bytes": 65536}, True),
        # the switch
        ("POST", PATH, FAST, {"fast_path": False}, False),
    ],
)
def test_the_fast_path_is_chosen_from_the_request_line_and_headers_alone(
    method: str, path: str, headers: dict[str, str], settings: dict[str, Any], fast: bool
) -> None:
    """No body, no credential check, no count: a function of the head and the settings."""
    assert takes_fast_path(Settings(**settings), method, path, headers.get) is fast


def chunked(body: bytes) -> Iterator[bytes]:
    """``body`` sent without a ``Content-Length`` (``Transfer-Encoding: chunked``)."""
    yield body[:7]
    yield body[7:]


# Headers that frame the message or describe the hop, not the answer.
FRAMING = {"content-length", "transfer-encoding", "connection", "keep-alive", "date", "server"}


def answer_of(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    headers = {k: v for k, v in response.headers.items() if k not in FRAMING}
    return response.status_code, headers, response.content


def both_ways(
    client: httpx.Client, body: bytes, headers: dict[str, str]
) -> tuple[httpx.Response, httpx.Response]:
    """The same request with its length declared, then chunked; one request id for both,
    so that even error bodies (which quote it) compare byte for byte."""
    sent = {**JSON_HEADERS, "x-request-id": "parity-1", **headers}
    declared = client.post(PATH, content=body, headers=sent)
    streamed = client.post(PATH, content=chunked(body), headers=sent)
    assert "content-length" not in streamed.request.headers
    return declared, streamed


FAST_PATH_ON_AND_OFF = pytest.mark.parametrize(
    "fast_path",
    [
        pytest.param(True, marks=pytest.mark.settings(fast_path=True), id="fast_path"),
        pytest.param(False, marks=pytest.mark.settings(fast_path=False), id="no_fast_path"),
    ],
)

UNKNOWN_KEY = {"authorization": "Bearer fgk_" + "x" * 43}


@FAST_PATH_ON_AND_OFF
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no credential", 401, "missing_api_key"),
        ("unknown key", 401, "invalid_api_key"),
        ("unknown key, body not JSON", 401, "invalid_api_key"),
        ("body not JSON", 400, "invalid_json"),
        ("invalid field", 400, "invalid_request"),
        ("unknown parameter", 400, "unknown_parameter"),
        ("unknown model", 400, "model_not_found"),
        ("webhook without async", 400, "webhook_requires_async"),
        ("unknown variant", 400, "invalid_variant"),
        ("invalid idempotency key", 400, "invalid_idempotency_key"),
    ],
)
def test_a_refusal_is_the_same_either_way(
    client: httpx.Client, ai: ModelDouble, fast_path: bool, case: str, status: int, code: str
) -> None:
    headers = {} if case == "no credential" else dict(new_key(client))
    body: dict[str, Any] = dict(BODY)
    raw: bytes | None = None
    if case.startswith("unknown key"):
        headers.update(UNKNOWN_KEY)
    if case.endswith("body not JSON"):
        raw = b'{"prompt": "a kite",'
    elif case == "invalid field":
        body["steps"] = "many"
    elif case == "unknown parameter":
        body["colour"] = "red"
    elif case == "unknown model":
        body["model"] = "dall-e-3"
    elif case == "webhook without async":
        body["webhook_url"] = "https://example.com/hook"
    elif case == "unknown variant":
        body["variants"] = ["256.bmp"]
    elif case == "invalid idempotency key":
        headers["idempotency-key"] = "k" * 256
    declared, streamed = both_ways(client, raw or json.dumps(body).encode(), headers)
    assert answer_of(declared) == answer_of(streamed)
    error = declared.json()["error"]
    assert (declared.status_code, error["code"], error["request_id"]) == (status, code, "parity-1")
    assert ai.calls == 0


@FAST_PATH_ON_AND_OFF
def test_a_b64_json_hit_is_the_same_either_way(
    client: httpx.Client, ai: ModelDouble, fast_path: bool
) -> None:
    """The Worker's fast path splices the base64 in JS, FastAPI's answer in Python: the same
    bytes."""
    auth = new_key(client)
    raw = json.dumps({**BODY, "response_format": "b64_json"}).encode()
    miss = client.post(PATH, content=raw, headers={**JSON_HEADERS, **auth})
    assert (miss.status_code, miss.headers["x-cache"]) == (200, "MISS"), miss.text
    declared, streamed = both_ways(client, raw, auth)
    assert answer_of(declared) == answer_of(streamed)
    assert declared.headers["x-cache"] == "HIT" and declared.json()["cached"] is True
    assert declared.json()["data"][0]["b64_json"] == miss.json()["data"][0]["b64_json"]
    assert ai.calls == 1


@FAST_PATH_ON_AND_OFF
def test_either_way_replays_what_the_other_answered(
    client: httpx.Client, ai: ModelDouble, fast_path: bool
) -> None:
    """An ``Idempotency-Key`` answer kept by one way in is replayed by the other, byte for
    byte."""
    auth = new_key(client)
    raw = json.dumps({**BODY, "response_format": "b64_json"}).encode()
    for first_declared in (True, False):
        headers = {**JSON_HEADERS, **auth, "idempotency-key": f"parity-{first_declared}"}
        first = client.post(PATH, content=raw if first_declared else chunked(raw), headers=headers)
        again = client.post(PATH, content=chunked(raw) if first_declared else raw, headers=headers)
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        assert again.headers["idempotent-replayed"] == "true"
        assert again.content == first.content
    assert ai.calls == 1


@FAST_PATH_ON_AND_OFF
def test_an_async_request_is_the_same_either_way(client: httpx.Client, fast_path: bool) -> None:
    """Two jobs (their ids differ), answered alike (past the cache, so neither is done)."""
    auth = new_key(client)
    raw = json.dumps(BODY).encode()
    asked = {**auth, "prefer": "respond-async", "cache-control": "no-store"}
    declared, streamed = both_ways(client, raw, asked)
    assert declared.status_code == streamed.status_code == 202, declared.text
    assert set(answer_of(declared)[1]) == set(answer_of(streamed)[1])
    assert declared.headers["preference-applied"] == "respond-async"
    assert set(declared.json()) == set(streamed.json())


@pytest.mark.runtimes("local")
@pytest.mark.anyio
@pytest.mark.parametrize(
    "extra",
    [{}, {"idempotency-key": "k1"}, {"prefer": "respond-async"}, {"cache-control": "no-cache"}],
)
async def test_the_handler_reads_no_header_but_those_it_names(
    client: httpx.Client, gateway: Gateway, extra: dict[str, str]
) -> None:
    """A runtime may read ``HEADERS`` once, up front, and hand the handler a plain lookup
    (the Worker does): the handler asks for no other header."""
    raw = json.dumps(BODY).encode()
    sent = {
        **{k.lower(): v for k, v in new_key(client).items()},
        "content-type": "application/json",
        "content-length": str(len(raw)),
        **extra,
    }
    asked: list[str] = []

    def header(name: str) -> str | None:
        asked.append(name)
        return sent.get(name)

    async def body(_limit: int) -> bytes:
        return raw

    view = RequestView("POST", PATH, header, body, "127.0.0.1", "http://testserver/")
    reply = await GenerationHandler(FailedAttempts(), form_parts).handle(gateway, view)
    assert reply.status in (200, 202), reply.prefix
    assert takes_fast_path(Settings(), "POST", PATH, header)
    assert set(asked) <= set(HEADERS), sorted(set(asked) - set(HEADERS))


def test_a_refusal_before_the_body_is_read_is_what_the_client_gets(client: httpx.Client) -> None:
    """A 401 answered while the client is still sending a large body (here 400 KB, within
    the limit) reaches it as a 401. On workerd one such answer in about sixty was a 500
    "Network connection lost" until the fast path took in the unread body; so many tries."""
    big = json.dumps({"prompt": "x" * 400_000}).encode()
    answers = [client.post(PATH, content=big, headers=JSON_HEADERS).status_code for _ in range(120)]
    assert set(answers) == {401}


@pytest.mark.runtimes("local")
@pytest.mark.anyio
@pytest.mark.parametrize(
    "fast_path",
    [
        pytest.param(True, marks=pytest.mark.settings(fast_path=True)),
        pytest.param(False, marks=pytest.mark.settings(fast_path=False)),
    ],
)
async def test_the_fast_path_answers_without_the_route(
    client: httpx.Client, gateway: Gateway, fast_path: bool
) -> None:
    """The parity tests cannot tell which way a request went (that is their point): here
    the FastAPI route's module is watched, and a declared-length JSON generation enters it
    only with the fast path off."""
    headers = {**new_key(client), **JSON_HEADERS}
    entered: set[str] = set()

    def profile(frame: Any, event: str, _arg: Any) -> None:
        if event == "call":
            entered.add(str(frame.f_globals.get("__name__")))

    transport = httpx.ASGITransport(app=create_app(lambda _request: gateway))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as local:
        sys.setprofile(profile)
        try:
            answer = await local.post(PATH, content=json.dumps(BODY), headers=headers)
        finally:
            sys.setprofile(None)
    assert answer.status_code == 200, answer.text
    assert "fluxgate.api.generate" in entered
    assert ("fluxgate.api.routes.generations" in entered) is not fast_path


@pytest.mark.runtimes("local")
def test_a_fault_is_the_one_500_logged_once_either_way(
    client: httpx.Client,
    gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not swallowed into a decline (and run again by the route): the runtime's one
    catch-all logs it once, with its traceback, and answers ``500 internal_error``."""
    auth = new_key(client)
    calls: list[str] = []

    async def broken(*_args: object, **_kwargs: object) -> None:
        calls.append("generate")
        raise RuntimeError("a bug")

    monkeypatch.setattr(gateway.generator, "generate", broken)
    for streamed in (False, True):
        caplog.clear()
        calls.clear()
        raw = json.dumps(BODY).encode()
        with caplog.at_level(logging.WARNING):
            r = client.post(
                PATH,
                content=chunked(raw) if streamed else raw,
                headers={**JSON_HEADERS, **auth},
            )
        assert r.status_code == 500 and r.json()["error"]["code"] == "internal_error"
        assert calls == ["generate"]
        said = [
            (rec.levelname, rec.getMessage(), rec.exc_info is not None) for rec in caplog.records
        ]
        assert said == [("ERROR", "unhandled error", True)]
