"""The Workers adapters in real Pyodide: runs tests/pyodide/harness.mjs and reports each case.

The harness loads the Python Workers runtime the Worker deploys to (Pyodide 314.0.4 from the
npm package, with the wheels of ``worker/requirements.lock``, among them the Workers SDK)
through the Worker host's ``loadIsolate`` (``host/worker.mjs``), and drives the adapters
against Miniflare's KV and R2 simulators and the host's binding doubles. One pytest test per
``case_*`` in ``tests/pyodide/cases.py``; the Node process runs once per session.
"""

import pytest

from .pyodide_runner import cases, run_harness

NODE_PACKAGES = ("pyodide", "miniflare", "smol-toml", "sql.js")
CASES = cases("cases.py")


@pytest.fixture(scope="session")
def harness_results() -> dict[str, dict[str, object]]:
    return run_harness("harness.mjs", NODE_PACKAGES)


def test_every_case_was_run(harness_results):
    assert sorted(harness_results) == sorted(CASES)


@pytest.mark.parametrize("case", CASES)
def test_pyodide_case(harness_results, case):
    result = harness_results.get(case)
    assert result is not None, f"{case} did not run"
    assert result["ok"], result.get("detail")
