"""The README's table of what each Workers plan serves is the benchmark's: the one
``bench/workerd_plans.py`` renders from the raw results ``docs/benchmarks.md`` holds (a
full ``bench/run.py`` rewrites both)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def plans() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workerd_plans", ROOT / "bench/workerd_plans.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def measured() -> dict:
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    raw = page[page.index("```json") + len("```json") : page.rindex("```")]
    return json.loads(raw)["worker"]


def test_the_readme_shows_the_plan_table_the_benchmark_measured():
    module = plans()
    table = module.plan_table(measured())
    assert module.shown((ROOT / "README.md").read_text()) == table
    assert module.shown((ROOT / "docs" / "benchmarks.md").read_text()) == table


def test_a_request_over_the_free_plans_limit_is_said_not_to_fit():
    module = plans()
    now = {
        "requests": {
            "js_floor": {"median_ms": 3.0},
            "healthz": {"median_ms": 7.0},
            "miss": {"median_ms": 40.0},
        }
    }
    rows = {line.split(" | ")[0]: line for line in module.plan_table(now)[2:]}
    assert "fits, 6.0 ms to spare" in rows["| `GET /healthz`"]
    assert (
        "**does not fit**: 27.0 ms over"
        in rows["| generation, cache miss (the model's own time is waiting, not CPU)"]
    )
