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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ADMIN = "walk-admin-token-0123456789abcdef"


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.project.test_layout import LAYERS  # noqa: E402 - the rule's own list of layers

# The runtimes' adapters implement the core's ports: calling one is not a climb.
ADAPTERS = ("fluxgate.local.", "fluxgate.edge.bindings.")


def layer(module: str) -> int:
    for index, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return index
    return -1  # not in the layered tree (an older layout): not counted as a climb


@dataclass
class Entry:
    module: str
    caller: str | None
    parent: int | None
    calls_on: bool = False  # it entered other modules in turn: a step of the walk, not a leaf


class Entries:
    """Entries into ``fluxgate`` modules while active (this thread only)."""

    def __init__(self, rename: dict[str, str]) -> None:
        self.entries: list[Entry] = []
        self._rename = rename
        self._entry_of: dict[int, int | None] = {}  # frame id -> the entry it runs in
        self._frames: list[FrameType] = []  # kept alive, so that frame ids stay unique

    def _module(self, frame: FrameType) -> str:
        name = str(frame.f_globals.get("__name__", ""))
        return self._rename.get(name, name)

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or id(frame) in self._entry_of:
            return  # a coroutine resuming is not a new entry
        module = self._module(frame)
        if not module.startswith("fluxgate"):
            return
        caller = frame.f_back
        while caller is not None and not self._module(caller).startswith("fluxgate"):
            caller = caller.f_back
        parent = self._entry_of.get(id(caller)) if caller is not None else None
        self._frames.append(frame)
        caller_module = self._module(caller) if caller is not None else None
        if caller_module == module:
            self._entry_of[id(frame)] = parent
            return
        if parent is not None:
            self.entries[parent].calls_on = True
        self._entry_of[id(frame)] = len(self.entries)
        self.entries.append(Entry(module, caller_module, parent))

    def __enter__(self) -> Entries:
        sys.setprofile(self)
        return self

    def __exit__(self, *_: object) -> None:
        sys.setprofile(None)


def report(name: str, entries: Entries) -> None:
    """Steps are entries that go on into other modules (leaves, such as a base64 helper,
        are counted apart); a climb is a call into a higher layer than the caller's (a callback,
    or a reach upwards), a call into a runtime's adapter of a port is not."""
    steps = [e for e in entries.entries if e.calls_on]
    per_module = Counter(e.module for e in steps)
    returns = sum(n - 1 for n in per_module.values())
    climbs = [
        e
        for e in entries.entries
        if e.caller and not e.module.startswith(ADAPTERS) and layer(e.module) > layer(e.caller) >= 0
    ]
    print(
        f"## {name}: {len(steps)} steps in {len(per_module)} modules, {returns} returns to "
        f"a module already stepped through, {len(climbs)} climbs to a higher layer; "
        f"{len(entries.entries) - len(steps)} leaf calls"
    )
    for module, n in per_module.most_common():
        print(f"  {n:3d}  {module}")
    for e in climbs:
        print(f"  climb: {e.caller} -> {e.module}")


def renames(path: str | None) -> dict[str, str]:
    """Old module names to new ones (``old new`` per line, without ``fluxgate.``), to report
    an older layout in today's layers."""
    table: dict[str, str] = {}
    for line in Path(path).read_text().splitlines() if path else []:
        if line.strip():
            old, new = line.split()
            table["fluxgate." + old] = "fluxgate." + new
    return table


async def main(rename: dict[str, str]) -> None:
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
            with Entries(rename) as miss:
                answer = await client.post("/v1/images/generations", json=body, headers=auth)
            assert answer.status_code == 200, answer.text
            url = answer.json()["data"][0]["url"]
            await client.get(url)
            with Entries(rename) as download:
                got = await client.get(url)
            assert got.status_code == 200, got.text
    report("JSON generation miss", miss)
    report("signed download", download)


if __name__ == "__main__":
    asyncio.run(main(renames(sys.argv[1] if len(sys.argv) > 1 else None)))
