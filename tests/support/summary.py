"""What the terminal summary adds: the API tests per runtime, what was skipped on the
Worker, the Worker's isolate crashes, and where the console's screenshots went."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .runtimes import RUNTIMES
from .workerd import ISOLATE_CHECKED, ISOLATE_CRASH

OUTCOMES = ("passed", "failed", "skipped", "error")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each API test with its runtime, for the summary below."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "runtime" in callspec.params:
            item.user_properties.append(("runtime", callspec.params["runtime"]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    per_runtime(terminalreporter)
    isolate_crashes(terminalreporter)
    screenshots(terminalreporter)


def per_runtime(terminalreporter: Any) -> None:
    """How many API tests ran on each runtime, and what was skipped on the Worker."""
    counts: Counter[tuple[str, str]] = Counter()
    skipped: list[str] = []
    for outcome in OUTCOMES:
        for report in terminalreporter.stats.get(outcome, []):
            runtime = dict(getattr(report, "user_properties", ())).get("runtime")
            if runtime is None or (outcome == "passed" and report.when != "call"):
                continue
            counts[(runtime, outcome)] += 1
            if runtime == "worker" and outcome == "skipped":
                skipped.append(f"{report.nodeid}: {report.longrepr[-1]}")
    if not counts:
        return
    terminalreporter.section("API tests per runtime (worker: the Worker on workerd)")
    for runtime in RUNTIMES:
        parts = ", ".join(f"{counts[(runtime, o)]} {o}" for o in OUTCOMES if counts[(runtime, o)])
        terminalreporter.write_line(f"{runtime}: {parts or 'none'}")
    for line in skipped:
        terminalreporter.write_line(f"skipped on the Worker: {line}")


def isolate_crashes(terminalreporter: Any) -> None:
    """How the Worker's isolate died during the tests whose stack was checked, if it did."""
    crashes: list[str] = []
    checked: set[str] = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == ISOLATE_CRASH:
                    crashes.append(f"{report.nodeid}: {value}")
                elif name == ISOLATE_CHECKED:
                    checked.add(report.nodeid)
    if checked:
        terminalreporter.write_line(
            f"Worker isolate crashes: {len(crashes) or 'none'} "
            f"(checked after each of {len(checked)} tests on the tests' workerd stacks)"
        )
    for line in crashes:
        terminalreporter.write_line(f"isolate crashed: {line}")


def screenshots(terminalreporter: Any) -> None:
    """The console's screenshots (``record_property("screenshot", path)``)."""
    shots = sorted(
        {
            str(value)
            for report in terminalreporter.stats.get("passed", [])
            for name, value in getattr(report, "user_properties", ())
            if name == "screenshot"
        }
    )
    if shots:
        terminalreporter.section("console screenshots")
        terminalreporter.write_line(f"folder: {Path(shots[0]).parent}")
        for shot in shots:
            terminalreporter.write_line(shot)
