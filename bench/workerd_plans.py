"""What each Workers plan serves: the README's table, from the Worker benchmark's figures.

Cloudflare's limit is CPU per invocation: 10 ms on Workers Free; on Workers Paid 30 s by
default (``limits.cpu_ms`` raises it to 5 minutes). Each request kind's figure is the
Worker's own CPU measured on workerd (its CPU less the JS floor's): an upper bound, since
here it also holds what Miniflare spends emulating KV, R2, Durable Objects and Queues in
the same process, which on Cloudflare runs elsewhere and is not the Worker's CPU. Cloudflare
measures on other machines, with its own accounting: the margin is what this measurement
leaves, not a promise.

``bench/run.py`` writes the table into the README between :data:`BEGIN` and :data:`END`
and into ``docs/benchmarks.md``; ``tests/project/test_readme_plans.py`` checks that the
README's is the one the raw results in ``docs/benchmarks.md`` give.
"""

from __future__ import annotations

import re
from typing import Any

FREE_MS = 10.0  # Workers Free: CPU per invocation
PAID_DEFAULT_MS = 30_000.0  # Workers Paid: the default limits.cpu_ms
LIMITS_PAGE = "https://developers.cloudflare.com/workers/platform/limits/#cpu-time"
BEGIN = "<!-- plan-table: bench/run.py writes it from docs/benchmarks.md's figures -->"
END = "<!-- /plan-table -->"

# (scenario, the request)
KINDS: list[tuple[str, str]] = [
    ("healthz", "`GET /healthz`"),
    ("hit_url", "generation, cache hit, `url`"),
    ("hit_b64_json", "generation, cache hit, `b64_json`"),
    ("download", "signed download (full, from the edge cache)"),
    ("download_range", "signed download, `Range`"),
    ("variant_first", "a variant's first download (made, signed, stored)"),
    ("miss", "generation, cache miss (the model's own time is waiting, not CPU)"),
    ("async_submission", "async submission (`Prefer: respond-async`)"),
]


def _free(own: float) -> str:
    if own <= FREE_MS:
        return f"fits, {FREE_MS - own:.1f} ms to spare"
    return f"**does not fit**: {own - FREE_MS:.1f} ms over"


def plan_table(now: dict[str, Any]) -> list[str]:
    """The table: each request kind's own CPU, against each plan's limit."""
    requests = now["requests"]
    js = requests["js_floor"]["median_ms"]
    lines = [
        f"| request | CPU measured on workerd | Workers Free ({FREE_MS:g} ms) "
        f"| Workers Paid (default {PAID_DEFAULT_MS / 1000:g} s) |",
        "|---|---|---|---|",
    ]
    rows = [(what, requests[name]["median_ms"] - js) for name, what in KINDS if name in requests]
    jobs = now.get("async_jobs")
    if jobs and jobs.get("n"):
        rows.append(
            (
                "its job, in the queue's consumer (an invocation of its own, per job)",
                jobs["median_ms"] - js,
            )
        )
    for what, own in rows:
        paid = f"fits, {own / PAID_DEFAULT_MS:.2%} of it"
        lines.append(f"| {what} | {own:.1f} ms | {_free(own)} | {paid} |")
    return lines


def replaced(text: str, table: list[str]) -> str:
    """``text`` with the block between :data:`BEGIN` and :data:`END` replaced by ``table``."""
    block = re.compile(re.escape(BEGIN) + r"\n.*?" + re.escape(END), re.S)
    if not block.search(text):
        raise ValueError("no plan-table block to replace")
    return block.sub(lambda _: "\n".join([BEGIN, *table, END]), text)


def shown(text: str) -> list[str]:
    """The table in ``text``'s block."""
    found = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    if found is None:
        raise ValueError("no plan-table block")
    return found.group(1).splitlines()
