"""How many times a request enters each of Fluxgate's modules on its way through.

A design measure, not a timing: one JSON generation miss and one signed download are made
against the local runtime (in process, the offline placeholder model), and every call that
crosses from one ``fluxgate`` module into another is counted as an *entry* of the callee's
module (a coroutine resuming after an ``await`` is not a new entry). A module entered
many times by one request is one the reader has to come back to; the layering goal is one
entry per module on the way down. The Worker's own front (``edge/front``) runs only on
workerd, so it is not in these counts; everything from the API layer down is the same code.

    .venv/bin/python bench/walk.py            # this checkout
    PYTHONPATH=/path/to/other/src .venv/bin/python bench/walk.py   # another one
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import httpx

ADMIN = "walk-admin-token-0123456789abcdef"


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.module_walk import Walk  # noqa: E402 - the harness's walk too


async def main() -> None:
    from fluxgate.api.app import create_app
    from fluxgate.local.runtime import build_runtime

    with tempfile.TemporaryDirectory() as folder:
        runtime = build_runtime(Path(folder), {"FLUXGATE_ADMIN_TOKEN": ADMIN})
        app = create_app(lambda _request: runtime.gateway)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://walk") as client:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            key = await client.post("/v1/admin/keys", json={"name": "walk"}, headers=admin)
            auth = {"Authorization": f"Bearer {key.json()['key']}"}
            body = {"prompt": "a lighthouse at dusk", "size": "512x512"}
            await client.post("/v1/images/generations", json={**body, "seed": 1}, headers=auth)
            with Walk() as miss:
                answer = await client.post("/v1/images/generations", json=body, headers=auth)
            assert answer.status_code == 200, answer.text
            url = answer.json()["data"][0]["url"]
            await client.get(url)
            with Walk() as download:
                got = await client.get(url)
            assert got.status_code == 200, got.text
    print(miss.summary().report("JSON generation miss"))
    print(download.summary().report("signed download"))


if __name__ == "__main__":
    asyncio.run(main())
