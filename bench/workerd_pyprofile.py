"""Where the Worker's Python time goes, function by function, on workerd.

V8's profile (``workerd_profile.py``) sees the interpreter's C functions, not Python's. This
runs the Worker with ``bench/python_profile/entry.py`` as its entry (copied next to
``src/entry.py`` for the run, removed after: wrangler bundles a Worker's modules from its
main module's folder), which wraps each request in ``cProfile`` on workerd's precise timers,
and reads each path's functions by their share of the Python time it measured (see the
entry's docstring for why shares, and what is not counted).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
from workerd_stack import ROOT, Prepared, Stack

ENTRY = ROOT / "bench" / "python_profile" / "entry.py"
PROFILED_ENTRY = ROOT / "src" / "_bench_python_profile.py"  # bench/workerd_stack.mjs's
PREFIX = "/__bench/python-profile/"


def short(function: str) -> str:
    """A profiled function's name without the bundle's folders: ``fluxgate/api/x.py:12(f)``,
    ``python_modules/...``, the standard library's by module."""
    for marker in ("/metadata/", "/python314.zip/", "/site-packages/", "/lib/python3.14/"):
        if marker in function:
            return function.split(marker, 1)[1]
    return function


# The paths profiled, and how many requests of each (a few thousand 3 ms steps each).
SIZES = {"healthz": 600, "hit_url": 600, "download": 600, "miss": 60}
WARMUP = 20


class Paths:
    """The profiled paths' requests: an API key, a cached generation, its signed URL."""

    def __init__(self, stack: Stack, client: httpx.Client) -> None:
        self.client = client
        made = client.post(
            "/v1/admin/keys",
            json={"name": "profile", "scopes": ["images:generate", "images:read"]},
            headers={"authorization": f"Bearer {stack.admin_token}"},
        )
        made.raise_for_status()
        self.auth = {"authorization": f"Bearer {made.json()['key']}"}
        first = client.post("/v1/images/generations", json=self.body(), headers=self.auth)
        first.raise_for_status()
        self.file_url = httpx.URL(first.json()["data"][0]["url"]).raw_path.decode()
        self.fresh = 0

    @staticmethod
    def body(prompt: str = "a lighthouse at dusk, profiled") -> dict[str, Any]:
        return {"prompt": prompt, "width": 1024, "height": 768, "steps": 4}

    def request(self, name: str) -> httpx.Request:
        build = self.client.build_request
        if name == "healthz":
            return build("GET", "/healthz")
        if name == "download":
            return build("GET", self.file_url)
        body = self.body()
        if name == "miss":
            self.fresh += 1
            body = self.body(f"a lighthouse at dusk, profiled {self.fresh}")
        return build("POST", "/v1/images/generations", json=body, headers=self.auth)


def profile_python(prepared: Prepared, log: Path, scale: float = 1.0) -> dict[str, Any]:
    """Each of :data:`SIZES`' paths' Python profile (``scale`` times as many requests)."""
    shutil.copyfile(ENTRY, PROFILED_ENTRY)
    try:
        with Stack(prepared, log, python_profile=True) as stack:
            sizes = {name: max(3, round(n * scale)) for name, n in SIZES.items()}
            return _profiled(stack, sizes)
    finally:
        PROFILED_ENTRY.unlink(missing_ok=True)


def _profiled(stack: Stack, sizes: dict[str, int]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    identity = {"accept-encoding": "identity"}
    with httpx.Client(base_url=stack.url, timeout=120, headers=identity) as client:
        paths = Paths(stack, client)
        for name, n in sizes.items():
            for _ in range(WARMUP):
                client.send(paths.request(name)).raise_for_status()
            client.get(PREFIX + "start").raise_for_status()
            for _ in range(n):
                client.send(paths.request(name)).raise_for_status()
            stopped = client.get(PREFIX + "stop")
            stopped.raise_for_status()
            measured = stopped.json()
            total = measured["total"] or 1.0
            found[name] = {
                "requests": n,
                "functions": [
                    {
                        "function": short(row["function"]),
                        "calls_per_request": row["calls"] / n,
                        "share": row["own"] / total,
                    }
                    for row in measured["functions"]
                ],
            }
    return found
