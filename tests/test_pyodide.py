"""The Workers adapters in real Pyodide: runs tests/pyodide/harness.mjs and reports each case.

The harness loads Pyodide 0.28.2 (the release workerd uses) from the npm package, installs
the real Workers SDK from its wheel, and drives the adapters against Miniflare's KV and R2
simulators and a JavaScript AI binding double. One pytest test per ``case_*`` in
``tests/pyodide/cases.py``; the Node process runs once per session.
"""

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT / "tests" / "pyodide"
WHEELS = ROOT / ".cache" / "pyodide-wheels"
CASES = [
    node.name
    for node in ast.parse((HARNESS / "cases.py").read_text()).body
    if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("case_")
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"Pyodide harness cannot run in CI: {reason}")
    pytest.skip(f"Pyodide harness not runnable here: {reason} (run `npm ci`)")


def _ensure_wheels() -> None:
    if any(WHEELS.glob("workers_runtime_sdk-*.whl")):
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--dest",
            str(WHEELS),
            "-r",
            str(HARNESS / "requirements.txt"),
        ],
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="session")
def harness_results() -> dict[str, dict[str, object]]:
    node = shutil.which("node")
    if node is None:
        _unavailable("node is not installed")
    for package in ("pyodide", "miniflare"):
        if not (ROOT / "node_modules" / package / "package.json").exists():
            _unavailable(f"node_modules/{package} is missing")
    _ensure_wheels()
    proc = subprocess.run(
        [node, str(HARNESS / "harness.mjs"), "--wheels", str(WHEELS)],
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
