"""The module walks of a few requests on the local server, in process (the Pyodide harness
makes the same requests from the Worker's entry: ``tests/pyodide/cases.py``).

A JSON generation miss, its signed download, a refused download (a forged signature) and
a body route of the app (an admin key), each walked by :class:`.module_walk.Walk` through the
whole ASGI stack, from the static console's layer in front of the app down.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from fluxgate.api.app import create_app
from fluxgate.local.runtime import build_runtime

from .module_walk import Summary, Walk

ADMIN = "walk-admin-token-0123456789abcdef"
REQUESTS = (
    "JSON generation miss",
    "signed download",
    "refused download",
    "admin key through the app",
)


async def local_walks() -> dict[str, Summary]:
    """Each request's walk, by name."""
    walks: dict[str, Walk] = {}
    with tempfile.TemporaryDirectory() as folder:
        runtime = build_runtime(Path(folder), {"FLUXGATE_ADMIN_TOKEN": ADMIN})
        app = create_app(lambda _request: runtime.gateway)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://walk") as client:
            admin = {"Authorization": f"Bearer {ADMIN}"}
            key = await client.post("/v1/admin/keys", json={"name": "walk"}, headers=admin)
            auth = {"Authorization": f"Bearer {key.json()['key']}"}
            body = {"prompt": "a lighthouse at dusk", "size": "512x512"}
            warm = await client.post(
                "/v1/images/generations", json={**body, "seed": 1}, headers=auth
            )
            assert warm.status_code == 200, warm.text
            with Walk() as walks["JSON generation miss"]:
                answer = await client.post("/v1/images/generations", json=body, headers=auth)
            assert answer.status_code == 200 and answer.headers["x-cache"] == "MISS", answer.text
            url = answer.json()["data"][0]["url"]
            assert (await client.get(url)).status_code == 200
            with Walk() as walks["signed download"]:
                got = await client.get(url)
            assert got.status_code == 200, got.text
            with Walk() as walks["refused download"]:
                forged = await client.get(url.replace("sig=", "sig=x"))
            assert forged.status_code == 403, forged.text
            with Walk() as walks["admin key through the app"]:
                made = await client.post("/v1/admin/keys", json={"name": "walked"}, headers=admin)
            assert made.status_code == 201, made.text
    assert tuple(walks) == REQUESTS
    return {name: walk.summary() for name, walk in walks.items()}
