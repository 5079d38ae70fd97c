"""The Workers adapters in real Pyodide: runs tests/pyodide/harness.mjs and reports each case.

The Pyodide unit harness (a unit-test harness, not the Worker, which runs on workerd) loads
the interpreter of the Python Workers runtime the Worker deploys to (Pyodide from the npm
package, with the wheels of ``worker/requirements.lock``, among them the Workers SDK) with
``loadIsolate`` (``tests/pyodide/isolate.mjs``), and drives the adapters one case at a time
against Miniflare's KV and R2 simulators and binding doubles (``tests/pyodide/bindings.mjs``,
``tests/pyodide/queues.mjs``, and the AI models of ``worker/local/ai_models.mjs``, those the
local AI stand-in serves on workerd). One pytest test per ``case_*`` in
``tests/pyodide/cases.py``; the Node process runs once per session.
"""

import pytest

from ..support.pyodide_runner import cases, run_harness

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
