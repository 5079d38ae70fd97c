"""What the Worker promises as deployed, checked on workerd: the cost of a warm hit in KV
reads, bodies refused before they are read, and the edge cache of downloads (only where the
Cache API works)."""

from __future__ import annotations

import json
import secrets
import socket
import time
from pathlib import Path

import httpx
import pytest

from ..support.admin import new_key
from ..support.bodies import generation
from ..support.config import ADMIN_TOKEN, SIGNING_KEYS
from ..support.polling import wait_for
from ..support.servers import serve
from ..support.workerd import Workerd

pytestmark = pytest.mark.runtimes("local", "worker")

BODY = generation("a brass compass", square=256, steps=2, seed=7)
DECLARED = 50 * 1024 * 1024  # 50 MB, far over MAX_BODY_BYTES (6 MiB)


WORKER = ("core:user:fluxgate", None)  # the Worker's own requests (no Durable Object's)


def binding_operations(trace_files: list[Path]) -> list[list[dict[str, str]]]:
    """Each request the Worker served, in order, as every operation workerd's async trace
    (``--async-trace``) recorded in its I/O context (bindings, subrequests, Durable Object
    calls, the cache): ``{"op", ...annotations}``."""
    requests: list[list[dict[str, str]]] = []
    for path in trace_files:
        worker_of: dict[int, tuple[str, str | None]] = {}
        operations: dict[int, dict[str, str]] = {}
        by_context: dict[int, list[dict[str, str]]] = {}
        for line in path.read_text().splitlines():
            event = json.loads(line)
            if event["e"] == "ctx":
                worker_of[event["ctx"]] = (event["worker"], event["actor"])
            elif event["e"] == "init" and worker_of.get(event["ctx"]) == (
                "core:user:fluxgate",
                None,
            ):
                if event["kind"] == "request":
                    by_context[event["ctx"]] = requests_ops = []
                    requests.append(requests_ops)
                elif event["kind"] == "operation":
                    operations[event["id"]] = {"op": event["name"]}
                    by_context[event["ctx"]].append(operations[event["id"]])
            elif event["e"] == "annotate" and event["id"] in operations:
                operations[event["id"]][event["k"]] = event["v"]
    return requests


def test_a_warm_cache_hit_reads_kv_exactly_twice(tmp_path):
    """The key record and the cache entry, nothing else: the policy document stays cached in
    the isolate (POLICY_CACHE_SECONDS as deployed), which holds only because the gateway is
    built once per isolate although the SDK wraps ``env`` anew for every event; no R2, no
    write. Counted by workerd itself (its async trace of each request's I/O)."""
    secrets = {"ADMIN_TOKEN": ADMIN_TOKEN, "URL_SIGNING_KEYS": SIGNING_KEYS}
    trace = ("--async-trace", str(tmp_path / "trace-{pid}.jsonl"))
    stack = Workerd(tmp_path, secrets, {"POLICY_CACHE_SECONDS": 30}, workerd_args=trace)
    try:
        with httpx.Client(base_url=stack.base, timeout=60) as client:
            auth = new_key(client)
            assert client.post("/v1/images/generations", json=BODY, headers=auth).status_code == 200
            warm = client.post("/v1/images/generations", json=BODY, headers=auth)
            assert warm.headers["x-cache"] == "HIT"
            hit = client.post("/v1/images/generations", json=BODY, headers=auth)
        assert hit.status_code == 200 and hit.headers["x-cache"] == "HIT"
    finally:
        stack.close()  # workerd has written the whole trace
    *_, last = binding_operations(sorted(tmp_path.glob("trace-*.jsonl")))
    assert [op["op"] for op in last] == ["kv_get", "kv_get"], last
    keys = [op["cloudflare.kv.query.keys"].split(":")[0] for op in last]
    assert keys == ["apikey", "cache"]


def _raw_exchange(base: str, head: bytes, first_body_bytes: bytes) -> tuple[bytes, float]:
    """Send a request head and a little of its body, then read the answer without sending
    the rest: returns the response bytes and how long the answer took."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        started = time.monotonic()
        sock.sendall(head + first_body_bytes)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in chunk:
                break
        return b"".join(chunks), time.monotonic() - started


@pytest.fixture
def server(runtime, tmp_path):
    with serve(runtime, tmp_path) as running:
        yield running


def test_a_declared_50_mb_body_gets_413_before_it_is_read(server):
    key = server.new_key("big")
    head = (
        b"POST /v1/images/generations HTTP/1.1\r\nHost: fluxgate\r\n"
        + f"Authorization: Bearer {key}\r\n".encode()
        + b"Content-Type: application/json\r\n"
        + f"Content-Length: {DECLARED}\r\n\r\n".encode()
    )
    answer, seconds = _raw_exchange(server.base, head, b'{"prompt": "')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer
    assert seconds < 20  # answered while 50 MB were still unsent


def test_a_chunked_body_is_cut_off_at_the_limit(server):
    key = server.new_key("chunked")
    head = (
        b"POST /v1/images/generations HTTP/1.1\r\nHost: fluxgate\r\n"
        + f"Authorization: Bearer {key}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"x" * (1024 * 1024)
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(7))  # 7 MiB, no end
    answer, _ = _raw_exchange(server.base, head, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer


def _cached(client: httpx.Client, path: str, headers: dict[str, str]) -> httpx.Response:
    """The download once the edge cache holds it: the cache write is ``waitUntil`` work,
    done after the first response went out."""
    return wait_for(
        lambda: (r := client.get(path, headers=headers)).headers.get("x-edge-cache") == "HIT" and r
    )


def test_the_edge_cache_is_used_only_where_it_works(workerd):
    """On a custom domain a download is cached at the edge (MISS, then HIT); on
    ``*.workers.dev``, where the Cache API has no effect, it is not tried nor claimed."""
    with httpx.Client(base_url=workerd.base, timeout=60) as client:
        auth = new_key(client)
        # An image of its own: the stack's edge cache outlives a test (it is not reset).
        body = {**BODY, "seed": secrets.randbelow(2**31)}
        url = client.post("/v1/images/generations", json=body, headers=auth).json()["data"][0]
        path = httpx.URL(url["url"]).raw_path.decode()
        on_dev = {"Host": "fluxgate.example.workers.dev"}
        for _ in range(2):
            r = client.get(path, headers=on_dev)
            assert r.status_code == 200 and "x-edge-cache" not in r.headers
        first = client.get(path, headers={"Host": "images.example.com"})
        second = _cached(client, path, {"Host": "images.example.com"})
    assert first.headers["x-edge-cache"] == "MISS" and second.headers["x-edge-cache"] == "HIT"
    assert second.content == first.content
    # A cached response's headers are immutable (as workerd's): the request id still lands.
    assert second.headers["x-request-id"] != first.headers["x-request-id"]


def test_a_variant_is_cached_at_the_edge_under_its_own_key(workerd):
    """A variant download is made once, then served from the edge cache like the image,
    each under its own key (the variant's bytes, not the original's)."""
    with httpx.Client(base_url=workerd.base, timeout=60) as client:
        auth = new_key(client)
        # An image of its own: the stack's edge cache outlives a test (it is not reset).
        body = {**BODY, "seed": secrets.randbelow(2**31), "variants": ["256.webp"]}
        item = client.post("/v1/images/generations", json=body, headers=auth).json()["data"][0]
        host = {"Host": "images.example.com"}
        original = client.get(httpx.URL(item["url"]).raw_path.decode(), headers=host)
        path = httpx.URL(item["variants"]["256.webp"]).raw_path.decode()
        first = client.get(path, headers=host)
        second = _cached(client, path, host)
    assert original.headers["x-edge-cache"] == "MISS"
    assert first.headers["x-edge-cache"] == "MISS" and second.headers["x-edge-cache"] == "HIT"
    assert second.content == first.content != original.content
    assert second.headers["content-type"] == "image/webp"
    assert second.content[8:12] == b"WEBP"
