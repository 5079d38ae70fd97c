"""One spelling of a signed download path: the one that was signed.

A signed URL's path is checked as it was on the wire. Every other spelling of it (a
percent-encoded slash, a ``%3F`` or ``%23`` tacked on, doubled slashes, dot segments,
upper-case hex, a trailing slash) is a path that was never signed: ``403
invalid_signature`` on both runtimes, whatever it would decode to.

A URL with dot segments (``/x/../``, ``%2e``) is not another spelling:
the URL Standard resolves them while parsing, workerd does so before the Worker sees the
path, and the local runtime does the same; it is served.

The HTTP client of the other tests normalises URLs (httpx drops ``..`` segments), so these
requests are written byte for byte: over a raw HTTP/1.1 connection to workerd, and as the
ASGI scope uvicorn would build from that request line on the local runtime (``path``
percent-decoded, ``raw_path`` as sent).
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import pytest

from ..support.bodies import generate, generation

pytestmark = pytest.mark.runtimes("local", "worker")


def raw_get(client: Any, runtime: str, request: pytest.FixtureRequest, target: str) -> Any:
    """``GET target`` with exactly these bytes as the request target: ``(status, body)``."""
    if runtime == "worker":
        base = urlsplit(request.getfixturevalue("workerd").base)
        connection = http.client.HTTPConnection(base.hostname or "", base.port, timeout=60)
        try:
            connection.request("GET", target)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    return client.portal.call(_asgi_get, client.app, target)


async def _asgi_get(app: Any, target: str) -> tuple[int, bytes]:
    """What uvicorn hands the app for the request line ``GET target HTTP/1.1``."""
    raw_path, _, query = target.encode("ascii").partition(b"?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop()
        await anyio.sleep_forever()  # the client stays connected until the answer is sent
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


@pytest.fixture
def signed(client: Any, auth: dict[str, str]) -> dict[str, Any]:
    """The signed URLs of a fresh image and of its ``256.webp`` variant: (path, query) each,
    and the image's digest."""
    r = generate(client, auth, generation("a signpost in fog", square=256, variants=["256.webp"]))
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    original, variant = urlsplit(item["url"]), urlsplit(item["variants"]["256.webp"])
    return {
        "original": (original.path, original.query),
        "variant": (variant.path, variant.query),
        "sha": r.json()["sha256"],
    }


def _respell(signed: dict[str, Any], which: str, old: str, new: str) -> str:
    path, query = signed[which]
    assert old.format(sha=signed["sha"]) in path
    respelled = path.replace(old.format(sha=signed["sha"]), new.format(sha=signed["sha"]), 1)
    return f"{respelled}?{query}"


SPELLINGS = {
    # name: (which URL, what to replace in its path, by what)
    "slash as %2F": ("variant", ".png/256.webp", ".png%2F256.webp"),
    "slash as %2f": ("variant", ".png/256.webp", ".png%2f256.webp"),
    "files/ as %2F": ("original", "/files/images/", "/files%2Fimages/"),
    "v1/ as %2F": ("original", "/v1/files/", "/v1%2Ffiles/"),
    "a %3F suffix": ("original", ".png", ".png%3F"),
    "a %3f suffix": ("original", ".png", ".png%3f"),
    "a %23 suffix": ("original", ".png", ".png%23"),
    "a %3F suffix on a variant": ("variant", "256.webp", "256.webp%3Fx"),
    "a double slash": ("variant", ".png/256.webp", ".png//256.webp"),
    "a double slash before images": ("original", "/files/images/", "/files//images/"),
    "the dot as %2E": ("original", "{sha}.png", "{sha}%2Epng"),
    "the dot as %2e": ("original", "{sha}.png", "{sha}%2epng"),
    "a letter as %70": ("original", ".png", ".%70ng"),
    "a trailing slash": ("original", ".png", ".png/"),
    "a trailing slash on a variant": ("variant", "256.webp", "256.webp/"),
    "upper-case hex digest": ("original", "{sha}", "{sha_upper}"),
}


@pytest.mark.parametrize("spelling", SPELLINGS, ids=list(SPELLINGS))
def test_any_other_spelling_of_a_signed_path_is_403(
    client: Any, runtime: str, request: pytest.FixtureRequest, signed: dict[str, Any], spelling: str
) -> None:
    which, old, new = SPELLINGS[spelling]
    target = _respell(signed, which, old, new.replace("{sha_upper}", signed["sha"].upper()))
    status, body = raw_get(client, runtime, request, target)
    assert status == 403, (target, body[:200])
    assert json.loads(body)["error"]["code"] == "invalid_signature"


# Spellings that are the signed URL itself once parsed as a URL: the URL Standard resolves
# dot segments (``%2e`` spelled or not). workerd parses a Worker's URL so before the Worker
# sees it (so does Cloudflare's edge), and the local runtime parses the path it was sent
# the same way: served on both. (Locally the router matches the decoded path first, so a
# dot segment or backslash that leaves ``/v1/files/`` is a 404 there, served on workerd.)
RESOLVED = {
    "a .. segment": ("original", "/files/images/", "/files/x/../images/"),
    "a . segment": ("original", "/files/images/", "/files/./images/"),
    "%2E%2E as a segment": ("original", "/files/images/", "/files/x/%2E%2E/images/"),
    "%2e as a segment": ("original", "/files/images/", "/files/%2e/images/"),
    ".%2E as a segment": ("variant", ".png/256.webp", ".png/x/.%2E/256.webp"),
}


@pytest.mark.parametrize("spelling", RESOLVED, ids=list(RESOLVED))
def test_dot_segments_resolve_as_in_any_url(
    client: Any, runtime: str, request: pytest.FixtureRequest, signed: dict[str, Any], spelling: str
) -> None:
    which, old, new = RESOLVED[spelling]
    status, body = raw_get(client, runtime, request, _respell(signed, which, old, new))
    assert status == 200 and body[:4] in (b"\x89PNG", b"RIFF")


@pytest.mark.parametrize("which", ["original", "variant"])
def test_the_signed_spelling_is_served(
    client: Any, runtime: str, request: pytest.FixtureRequest, signed: dict[str, Any], which: str
) -> None:
    path, query = signed[which]
    status, body = raw_get(client, runtime, request, f"{path}?{query}")
    assert status == 200 and body[:4] in (b"\x89PNG", b"RIFF")
