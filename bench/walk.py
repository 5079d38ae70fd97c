"""How a request walks through Fluxgate's modules, on both runtimes.

A design measure, not a timing (:mod:`tests.support.module_walk` defines it): every call
that crosses from one ``fluxgate`` module into another is an entry of the callee's module;
the layering goal is that a request enters each module once on the way down (no module
entered again on its own chain of calls, no call climbing a layer).

* **The Worker**, from its entry (``Default.fetch``): the Pyodide unit harness's case
  ``case_a_json_generation_miss_and_its_download_enter_each_module_once_on_the_way_down``
  (``tests/pyodide/cases.py``) walks a JSON generation miss and a signed download, fails
  on a re-entry or a climb, and leaves its counts as its note, printed here.
* **The local server**, in process (the offline placeholder model): the same two requests.

    .venv/bin/python bench/walk.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ADMIN = "walk-admin-token-0123456789abcdef"


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.module_walk import Walk  # noqa: E402 - the harness's walk too
from tests.support.pyodide_runner import V8_FLAGS  # noqa: E402
from tests.support.workerd import node  # noqa: E402

WORKER_CASE = "case_a_json_generation_miss_and_its_download_enter_each_module_once_on_the_way_down"


def worker_walk() -> str:
    """The harness case's note (or its failure), from the Worker's entry."""
    binary = node()
    if binary is None:
        return "(node is not installed: run `npm ci`)"
    harness = ROOT / "tests" / "pyodide" / "harness.mjs"
    proc = subprocess.run(
        [str(binary), *V8_FLAGS, str(harness), "--only", WORKER_CASE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith('{"case"'):
            record = json.loads(line)
            return str(record.get("note") or record.get("detail"))
    return f"(the harness did not run: {proc.stderr[-2000:]})"


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
    print("# The Worker, from its entry\n")
    print(worker_walk())
    print("\n# The local server\n")
    for name, walk in (("JSON generation miss", miss), ("signed download", download)):
        summary = walk.summary()
        print(summary.report(name) + "\n" + summary.walk())


if __name__ == "__main__":
    asyncio.run(main())
