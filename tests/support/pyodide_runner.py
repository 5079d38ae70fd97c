"""Running a Pyodide unit harness of tests/pyodide/ once per session: the Worker's adapters
in the Python Workers runtime's interpreter (the locked wheels, loaded into Pyodide in Node
by ``tests/pyodide/isolate.mjs``), one case at a time, against binding doubles. A unit-test
harness, not the Worker: the Worker runs on workerd (``tests/support/workerd.py``).

A harness prints one JSON line per case (``{"case", "ok", "detail", ...}``) among the log
lines of the code under test (access, audit), and exits 2 when it could not start.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .workerd import node as node_binary

ROOT = Path(__file__).resolve().parents[2]
HARNESS = ROOT / "tests" / "pyodide"
sys.path.insert(0, str(ROOT / "scripts"))

from worker_wheels import download as download_worker_wheels  # noqa: E402


def cases(module: str) -> list[str]:
    """The ``async def case_*`` of ``tests/pyodide/<module>``, in order."""
    tree = ast.parse((HARNESS / module).read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("case_")
    ]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Pyodide harness cannot run in CI: {reason}")
    pytest.skip(f"Pyodide harness not runnable here: {reason} (run `npm ci`)")


# workerd's V8 has ES2026's Uint8Array base64 built-ins, which the adapters use; Node 24's V8
# has them behind this flag.
V8_FLAGS = ("--js-base-64",)


def run_harness(script: str, packages: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each case's record, by name; skips (fails in CI) when Node or a package is missing."""
    node = node_binary()
    if node is None:
        _unavailable("node is not installed")
    for package in packages:
        if not (ROOT / "node_modules" / package / "package.json").exists():
            _unavailable(f"node_modules/{package} is missing")
    wheels = download_worker_wheels()  # the locked wheels, hash-checked; reused when present
    proc = subprocess.run(
        [str(node), *V8_FLAGS, str(HARNESS / script), "--wheels", str(wheels)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    results: dict[str, dict[str, Any]] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "case" in record:  # not a log line of the code under test (access, audit)
                results[record["case"]] = record
    if proc.returncode == 2 or not results:
        pytest.fail(f"harness did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return results
