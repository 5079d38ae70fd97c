"""The Worker's goals on workerd, met or not, and where the time goes when one is missed.

Each goal is a ratio of the Worker's own CPU per request (its CPU less the JS floor's,
medians of the same run) to the Python floor's own (a one-route FastAPI Worker's, less the
same JS floor). Where a goal is missed, the explanation is read from the profile of that path
taken on workerd (``bench/workerd_profile.py``) and from what the same I/O costs plain JS in
the same stack (``bench/floors/io.mjs``): what Fluxgate's Python spends, what any Worker
would spend, and what would remove the difference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workerd_plans import BEGIN, END, FREE_MS, LIMITS_PAGE, PAID_DEFAULT_MS, plan_table
from workerd_profile import CATEGORIES, FFI, GC, IDLE, JS, NATIVE, OUTSIDE, PYTHON
from workerd_report import GOAL_COLD_RATIO, cold_start_goal


@dataclass(frozen=True)
class Goal:
    """``scenario``'s own CPU (less ``less``, a plain-JS I/O scenario's own) within
    ``ratio`` times the Python floor's own. ``io``: the plain-JS I/O the path makes, by
    scenario (what any Worker pays for it here). ``remedy``: what would remove the rest."""

    scenario: str
    label: str
    ratio: float
    less: str | None = None
    io: tuple[str, ...] = ()
    remedy: str = ""


GOALS = (
    Goal(
        "healthz",
        "`GET /healthz`",
        1.2,
        remedy="It is answered in front of the ASGI bridge: no FastAPI routing, no ASGI "
        "scope, the JSON rendered once.",
    ),
    Goal(
        "hit_url",
        "warm hit, `url`",
        1.5,
        io=("io_kv_hit",),
        remedy="Its two KV reads (the key's record, the cache entry) are what any Worker would "
        "pay; the rest is the interpreter running the handler (the key's hash and record, "
        "the body's validation by pydantic, the cache key, the entry's parsing, the URL's "
        "HMAC, the JSON answer, the access line), with Pyodide's FFI and workerd's API "
        "(headers, the Response) beside it. "
        "What would remove it: answering hits from a JS front Worker (Python only on a "
        "miss), or keeping each key's record in the isolate for a few seconds (one KV read "
        "fewer, at the cost of a revocation taking that long to reach every isolate).",
    ),
    Goal(
        "hit_b64_json",
        "warm hit, `b64_json`",
        2.0,
        io=("io_kv_hit", "io_r2_b64"),
        remedy="Its I/O is the two KV reads and the 1.2 MB image read from R2 and answered as "
        "base64; the image never enters Python (the base64 is made in JS, the body spliced "
        "around it), so what is left is the hit's own Python. Only a client asking for `url` "
        "(the default) avoids the image's read.",
    ),
    Goal(
        "download",
        "signed download",
        1.2,
        io=("io_r2",),
        remedy="Its I/O here is a Cache API match and the body streamed out (the plain-JS "
        "figure streams the object from R2 instead, the nearest measured). Fluxgate's part "
        "is the signature's check, the paths and headers, and the envelope; what would "
        "remove it is serving downloads from a JS entry, Python never woken.",
    ),
    Goal(
        "miss",
        "miss, the model excluded",
        3.0,
        less="io_ai",
        io=("io_r2_put",),
        remedy="Miniflare runs R2, KV and the Durable Objects a miss calls (the coalescer, "
        "the budget ledger, the catalog, the provenance index) in the same process, so their "
        "CPU is counted here; on Cloudflare they are I/O to other machines. Of Fluxgate's own: the fingerprint and "
        "the C2PA signature (measured apart under Content Credentials), the XMP and the "
        "image's hashing; what would remove most of it is computing the fingerprint in the "
        "queue's consumer rather than in the request.",
    ),
    Goal(
        "async_submission",
        "async submission",
        2.0,
        remedy="The job's Durable Object write and the queue send are I/O any Worker would "
        "pay (both emulated in the same process here); the rest is the hit path's Python "
        "(authentication, validation) plus the job's record.",
    ),
)


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def own(requests: dict[str, Any], goal: Goal) -> float | None:
    """The goal's measured own CPU per request, or None if a scenario was not measured."""
    names = [goal.scenario, "js_floor", *([goal.less] if goal.less else [])]
    if any(name not in requests for name in names):
        return None
    js = requests["js_floor"]["median_ms"]
    value = requests[goal.scenario]["median_ms"] - js
    if goal.less:
        value -= requests[goal.less]["median_ms"] - js
    return float(value)


def goals_table(now: dict[str, Any]) -> list[str]:
    requests = now["requests"]
    py_own = requests["py_floor"]["median_ms"] - requests["js_floor"]["median_ms"]
    lines = [
        "| goal | the Worker's own | vs the Python floor's own | goal | |",
        "|---|---|---|---|---|",
    ]
    for goal in GOALS:
        value = own(requests, goal)
        if value is None:
            lines.append(f"| {goal.label} | not measured | | ≤ {goal.ratio:g}× | |")
            continue
        ratio = value / py_own
        verdict = "met" if ratio <= goal.ratio else "**not met**"
        less = f" (− the stand-in's call from JS: {goal.less})" if goal.less else ""
        lines.append(
            f"| {goal.label}{less} | {_ms(value)} | {ratio:.2f}× | ≤ {goal.ratio:g}× | {verdict} |"
        )
    cold = cold_start_goal(now["cold"])
    if cold is None:
        lines.append(
            f"| cold start restored from the snapshot | not measured | | ≤ {GOAL_COLD_RATIO:g}× | |"
        )
    else:
        ratio, met = cold
        lines.append(
            "| cold start restored from the snapshot, runtime CPU to the first 200 "
            f"(see Cold start) | | {ratio:.2f}× | ≤ {GOAL_COLD_RATIO:g}× "
            f"| {'met' if met else '**not met**'} |"
        )
    return lines


def profile_table(profiles: dict[str, Any]) -> list[str]:
    columns = [*CATEGORIES, IDLE]
    short = {
        PYTHON: "Python",
        FFI: "FFI",
        NATIVE: "workerd API",
        GC: "GC",
        JS: "other JS",
        OUTSIDE: "outside JS",
        IDLE: "idle",
    }
    lines = [
        "| path | " + " | ".join(short[c] for c in columns) + " | the isolate's own |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    for name, profile in profiles.items():
        cells = [profile["by_category_ms"].get(c, 0.0) for c in columns]
        busy = sum(v for c, v in zip(columns, cells, strict=True) if c not in (IDLE, OUTSIDE))
        lines.append(f"| {name} | " + " | ".join(f"{v:.2f}" for v in cells) + f" | {busy:.2f} ms |")
    return lines


def python_table(python: dict[str, Any], top: int = 8) -> list[str]:
    lines = [
        "| path | function | its share of the Python time | calls per request (each resumption of a coroutine counts) |",
        "|---|---|---|---|",
    ]
    for name, profile in python.items():
        for row in profile["functions"][:top]:
            lines.append(
                f"| {name} ({profile['requests']} requests) | `{row['function']}` "
                f"| {row['share']:.0%} | {row['calls_per_request']:.0f} |"
            )
    return lines


def explanations(now: dict[str, Any]) -> list[str]:
    """For each goal missed: its profile against the Python floor's, its I/O from plain JS,
    and what would remove the rest."""
    requests, profiles = now["requests"], now.get("profiles", {})
    js = requests["js_floor"]["median_ms"]
    py_own = requests["py_floor"]["median_ms"] - js
    floor = profiles.get("py_floor")
    lines: list[str] = []
    for goal in GOALS:
        value = own(requests, goal)
        if value is None:
            continue
        met = value / py_own <= goal.ratio
        io = sum(requests[n]["median_ms"] - js for n in goal.io if n in requests)
        allowed = goal.ratio * py_own
        parts = [
            f"- **{goal.label}** ({'met' if met else 'not met'}): {_ms(value)} of its own, "
            f"where the goal allows {_ms(allowed)}"
        ]
        if goal.io:
            within = "more than the goal allows" if io > allowed else "within the goal"
            parts.append(
                f"; its I/O made from plain JS ({', '.join(goal.io)}) costs {_ms(io)} alone, "
                f"{within}; without it {_ms(value - io)} "
                f"({(value - io) / py_own:.2f}× the Python floor's own)"
            )
        profile = profiles.get(goal.scenario)
        if profile is not None and floor is not None:
            mine, base = profile["by_category_ms"], floor["by_category_ms"]
            parts.append(
                f". Profiled, per request: Python {mine[PYTHON]:.2f} ms (the floor's "
                f"{base[PYTHON]:.2f}), FFI {mine[FFI]:.2f} ms ({base[FFI]:.2f}), workerd's API "
                f"{mine[NATIVE]:.2f} ms ({base[NATIVE]:.2f}), GC {mine[GC]:.2f} ms "
                f"({base[GC]:.2f}), outside the isolate's JS {mine[OUTSIDE]:.2f} ms "
                f"({base[OUTSIDE]:.2f})"
            )
        parts.append(f". {goal.remedy}")
        lines.append("".join(parts))
    return lines


def goals_section(now: dict[str, Any]) -> list[str]:
    lines = [
        "### Against the goals",
        "",
        "The goals read the Worker's own CPU per request against the Python floor's own, "
        "both measured above in the same run; a miss excludes the model (the stand-in's call, "
        "made from plain JS, is taken off).",
        "",
        *goals_table(now),
        "",
        "What the deploy snapshot may not hold, it does not: no value drawn from randomness "
        "(workerd refuses randomness while a Worker starts, and "
        "`tests/edge/test_workerd_startup.py` imports the Worker with every source refusing), "
        "none of the deploy's secrets (the same module searches the deploy snapshot for each, "
        "raw, as DER and as base64, beside a string the snapshot must hold), and no clock "
        "reading (no module keeps one at import; the gateway, with the settings and secrets, "
        "is built on an isolate's first request).",
        "",
    ]
    profiles = now.get("profiles")
    if profiles:
        lines += [
            "### Where the time goes: a profile on workerd",
            "",
            "V8's sampling profiler, through workerd's inspector (`bench/workerd_profile.py`), "
            "on a stack of its own (the measured one runs without the inspector), each path "
            "in the batch size the measurement used: sampled milliseconds per request by the "
            "innermost frame. **Python** is the interpreter's WebAssembly and its extensions "
            "(Pyodide's exports name its C functions; Python frames themselves are not "
            "visible); **FFI** Pyodide's proxies, conversions and promise glue between Python "
            "and JS; **workerd API** its native functions (bindings, `Request`, `Response`, "
            "`Headers`, `console`); **outside JS** time V8 attributes to the runtime's C++ "
            "(other isolates, I/O); a gap in sampling counts as one interval. The profiler's "
            "own cost inflates every figure: read them as shares, against the floors' rows.",
            "",
            *profile_table(profiles),
            "",
        ]
    python = now.get("python_profiles")
    if python:
        lines += [
            "Inside **Python**, function by function (`bench/workerd_pyprofile.py`: the "
            "Worker's entry wrapped in `cProfile` for a run of its own, on workerd's precise "
            "timers, which move in 3 ms steps: over hundreds of requests each function's "
            "total is an unbiased estimate, read as its share of the Python time measured; "
            "time spent awaiting JS is not Python's). The largest own times per path:",
            "",
            *python_table(python),
            "",
        ]
    lines += ["Each goal, and where a goal is missed what it spends and what would remove it:", ""]
    lines += explanations(now)
    return [
        *lines,
        "",
        "### What each plan serves",
        "",
        f"Cloudflare limits CPU per invocation ([limits]({LIMITS_PAGE})): {FREE_MS:g} ms on "
        f"Workers Free, {PAID_DEFAULT_MS / 1000:g} s by default on Workers Paid (up to 5 "
        "minutes with `limits.cpu_ms`). Each kind's figure is the Worker's own CPU above: an "
        "upper bound (it holds what Miniflare spends emulating KV, R2, Durable Objects and "
        "Queues in the same process, which is not the Worker's CPU on Cloudflare), measured "
        "here, not by Cloudflare's accounting. The README shows this table.",
        "",
        BEGIN,
        *plan_table(now),
        END,
    ]
