"""The Workers adapters in real Pyodide: runs tests/pyodide/harness.mjs and reports each case.

The harness loads the Python Workers runtime the Worker deploys to (Pyodide 314.0.4 from the
npm package, with the wheels of ``worker/requirements.lock``, among them the Workers SDK)
through the Worker host's ``loadIsolate`` (``host/worker.mjs``), and drives the adapters
against Miniflare's KV and R2 simulators and the host's binding doubles. One pytest test per
``case_*`` in ``tests/pyodide/cases.py``; the Node process runs once per session.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .runtimes import node as node_binary

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "pyodide"
sys.path.insert(0, str(ROOT / "scripts"))

from worker_wheels import download as download_worker_wheels  # noqa: E402

NODE_PACKAGES = ("pyodide", "miniflare", "smol-toml", "sql.js")
CASES = [
    node.name
    for node in ast.parse((HARNESS / "cases.py").read_text()).body
    if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("case_")
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Pyodide harness cannot run in CI: {reason}")
    pytest.skip(f"Pyodide harness not runnable here: {reason} (run `npm ci`)")


@pytest.fixture(scope="session")
def harness_results() -> dict[str, dict[str, object]]:
    node = node_binary()
    if node is None:
        _unavailable("node is not installed")
    for package in NODE_PACKAGES:
        if not (ROOT / "node_modules" / package / "package.json").exists():
            _unavailable(f"node_modules/{package} is missing")
    wheels = download_worker_wheels()  # the locked wheels, hash-checked; reused when present
    proc = subprocess.run(
        [node, str(HARNESS / "harness.mjs"), "--wheels", str(wheels)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "case" in record:  # not the Worker's own log lines (access, audit)
                results[record["case"]] = record
    if proc.returncode == 2 or not results:
        pytest.fail(f"harness did not run (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return results


def test_every_case_was_run(harness_results):
    assert sorted(harness_results) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_pyodide_case(harness_results, case):
    result = harness_results.get(case)
    assert result is not None, f"{case} did not run"
    assert result["ok"], result.get("detail")
