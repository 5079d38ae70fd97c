"""A crash in the middle of a generation never charges twice, on both runtimes, for real.

The server is killed (``kill -9``: `fluxgate serve`, or `npm run worker`'s wrangler and
workerd with it) while its requests wait on the model, and started again on the same stores.
The requests that died were charged and kept nothing: once their lease lapses they are
refunded, and a retry with the same ``Idempotency-Key`` is charged once in total.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..support.servers import Server, serve

pytestmark = pytest.mark.runtimes("local", "worker")

LEASE = 8  # GENERATION_LEASE_SECONDS of both servers: what a dead request holds its charge
LATENCY = 30  # each image takes this long before the crash: every request is in the model

BURST = [f"a paper crane, take {n}" for n in range(4)]
PLAIN = "a paper crane without a key"  # a request sent without an Idempotency-Key


def _generate(server: Server, auth: dict[str, str], prompt: str, key: str | None) -> Any:
    headers = {**auth, **({"Idempotency-Key": key} if key else {})}
    body = {"prompt": prompt, "width": 256, "height": 256, "seed": 7}
    return httpx.post(
        f"{server.base}/v1/images/generations", json=body, headers=headers, timeout=120
    )


def _usage(server: Server, auth: dict[str, str]) -> dict[str, Any]:
    answer = httpx.get(f"{server.base}/v1/usage", headers=auth, timeout=30)
    assert answer.status_code == 200, answer.text
    usage: dict[str, Any] = answer.json()
    return usage


def _wait_for(server: Server, auth: dict[str, str], requests: int) -> float:
    """Until ``requests`` are charged (each is then in the model call); when that was."""
    deadline = time.monotonic() + 120
    while _usage(server, auth)["requests"] < requests:
        assert time.monotonic() < deadline, "the burst never reached the model"
        time.sleep(0.2)
    return time.monotonic()


def _idempotency_key(prompt: str) -> str:
    return "retry-" + prompt.rsplit(" ", 1)[-1]


def test_a_crash_mid_generation_is_refunded_and_its_retry_charged_once(
    runtime: str, tmp_path: Path
) -> None:
    settings = {"generation_lease_seconds": str(LEASE)}
    with serve(runtime, tmp_path, latency=LATENCY, **settings) as server:
        auth = {"Authorization": f"Bearer {server.new_key('crash')}"}
        with ThreadPoolExecutor(len(BURST) + 1) as pool:
            sent = [pool.submit(_generate, server, auth, p, _idempotency_key(p)) for p in BURST]
            sent.append(pool.submit(_generate, server, auth, PLAIN, None))
            charged_at = _wait_for(server, auth, len(sent))
            server.crash()
            for request in sent:  # every one of them died with the server
                assert isinstance(request.exception(), httpx.HTTPError)

    with serve(runtime, tmp_path, **settings) as server:  # the same stores, started again
        time.sleep(max(0.0, charged_at + LEASE + 1 - time.monotonic()))
        usage = _usage(server, auth)
        assert (usage["requests"], usage["spent_usd"]) == (0, 0)  # nothing kept, nothing paid

        retries = [_generate(server, auth, p, _idempotency_key(p)) for p in BURST]
        assert [r.status_code for r in retries] == [200] * len(BURST)
        assert [r.headers["x-cache"] for r in retries] == ["MISS"] * len(BURST)
        charged = sum(r.json()["cost"]["charged_usd"] for r in retries)
        usage = _usage(server, auth)
        assert usage["requests"] == len(BURST)
        assert abs(usage["spent_usd"] - charged) < 1e-9

        again = [_generate(server, auth, p, _idempotency_key(p)) for p in BURST]
        assert [r.headers.get("idempotent-replayed") for r in again] == ["true"] * len(BURST)
        assert [r.json()["id"] for r in again] == [r.json()["id"] for r in retries]
        assert _usage(server, auth)["requests"] == len(BURST)
