"""How a request walks through Fluxgate's modules, on both runtimes.

A design measure, not a timing (:mod:`tests.support.module_walk` defines it): every call
that crosses from one ``fluxgate`` module into another is an entry of the callee's module;
the layering goal is that a request enters each module once on the way down (no module
entered again on its own chain of calls, no call climbing a layer).

* **The Worker**, from its entry (``Default.fetch``): the Pyodide unit harness's case
  ``case_a_json_generation_miss_and_its_download_enter_each_module_once_on_the_way_down``
  (``tests/pyodide/cases.py``) walks a JSON generation miss, its signed download, a refused
  download and a body route of the app, fails
  on a re-entry or a climb, and leaves its counts as its note, printed here.
* **The local server**, in process (the offline placeholder model): the same requests
  (``tests/support/walks.py``; ``tests/project/test_module_walk.py`` asserts the same).

    .venv/bin/python bench/walk.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.pyodide_runner import V8_FLAGS  # noqa: E402
from tests.support.walks import local_walks  # noqa: E402 - the local test's walks too
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
    print("# The Worker, from its entry\n")
    print(worker_walk())
    print("\n# The local server\n")
    for name, summary in (await local_walks()).items():
        print(summary.report(name) + "\n" + summary.walk())


if __name__ == "__main__":
    asyncio.run(main())
