"""The Worker's cold start on workerd: its first response after workerd starts, with and
without a memory snapshot, beside the floors' own cold starts.

On Cloudflare a deploy runs the Worker's top level once and saves a memory snapshot of it;
every cold start restores that snapshot instead of importing again. workerd does the same
offline with ``--python-save-snapshot --python-snapshot-dir D`` (it writes the snapshot
into D and goes on serving) and ``--python-load-snapshot <file> --python-snapshot-dir D``.
The launcher of ``scripts/prepare_workerd.py`` passes ``$FLUXGATE_WORKERD_ARGS`` to
``workerd serve``, so each cold start here is a fresh stack (the Worker and the AI stand-in,
no floors) started with or without those flags, polled with ``GET /healthz`` until it
answers 200.

A cold start's CPU holds the stack's own start (Miniflare's Workers, the proxy's), so the
floors start cold too, each in a stack of its own (``Stack(only=...)``: that floor alone,
so that a snapshot is the floor's), polled with ``GET /floor``: the JS floor, whose runtime
CPU by its first 200 is the stack's, taken off every other start's to give its own; the
Python floor (FastAPI behind the SDK's bridge) plain, saving and restoring its own
snapshot with the Worker's flags, what any FastAPI Worker's cold start costs.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from workerd_stack import TICK_MS, Floor, Prepared, Stack, started_at


def first_response(
    prepared: Prepared, log: Path, workerd_args: str = "", only: Floor | None = None
) -> dict[str, float]:
    """One cold start: seconds from spawning the stack and from the runtime process's start
    to the first 200, and the CPU each workerd process had used by then. The Worker's stack
    is polled on ``/healthz``; a floor's (``only``) on ``/floor``, by its host name."""
    path = "/floor" if only else "/healthz"
    with (
        Stack(prepared, log, workerd_args=workerd_args, only=only) as stack,
        httpx.Client() as client,
    ):
        host = stack.hosts.get(only) if only else None
        headers = {"host": host} if host else {}
        deadline = time.monotonic() + 180
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no 200 from {path} within 180 s:\n{log.read_text()[-4000:]}")
            try:
                if client.get(f"{stack.url}{path}", headers=headers, timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        answered = time.monotonic()
        booted = time.clock_gettime(time.CLOCK_BOOTTIME)
        ticks, roles = stack.ticks(), stack.roles()
        runtime = stack.pids[roles.index("runtime")]
        result = {
            "spawn_to_first_s": answered - stack.spawned,
            "workerd_to_first_s": booted - started_at(runtime),
        }
        for role, spent in zip(roles, ticks, strict=True):
            result[f"cpu_{role}_ms"] = spent * TICK_MS
        return result


def medians(runs: list[dict[str, float]]) -> dict[str, Any]:
    return {"n": len(runs), **{k: statistics.median(r[k] for r in runs) for k in runs[0]}}


def snapshot_starts(
    prepared: Prepared, tmp: Path, runs: int, only: Floor | None = None
) -> dict[str, Any]:
    """Plain cold starts, the run that saves the snapshot, and cold starts restoring it: of
    the Worker's stack, or of a Python floor alone (``only``)."""
    stem = f"cold-{only}" if only else "cold"
    plain = [first_response(prepared, tmp / f"{stem}-{i}.log", only=only) for i in range(runs)]
    snapshots = tmp / (f"snapshots-{only}" if only else "snapshots")
    snapshots.mkdir()
    save = first_response(
        prepared,
        tmp / f"{stem}-save.log",
        f"--python-save-snapshot --python-snapshot-dir {snapshots}",
        only,
    )
    written = sorted(p.name for p in snapshots.iterdir())
    result: dict[str, Any] = {"plain": medians(plain), "save": save, "snapshot_files": written}
    if len(written) != 1:
        result["snapshot_error"] = f"expected one snapshot file in the directory, got {written}"
        return result
    result["snapshot_bytes"] = (snapshots / written[0]).stat().st_size
    restored = [
        first_response(
            prepared,
            tmp / f"{stem}-snapshot-{i}.log",
            f"--python-load-snapshot {written[0]} --python-snapshot-dir {snapshots}",
            only,
        )
        for i in range(runs)
    ]
    result["snapshot"] = medians(restored)
    return result


def cold_starts(
    prepared: Prepared, tmp: Path, runs: int, python_floor: bool = True
) -> dict[str, Any]:
    """The Worker's cold starts (plain, saving, restoring: at the top level, as before),
    the JS floor's (``js_floor``, medians) and, with ``python_floor``, the Python floor's
    (``py_floor``: plain, saving and restoring its own snapshot), ``runs`` of each but the
    saves. (Quick mode leaves the Python floor out: CI's time, and the same code as the
    Worker's starts.)"""
    js_floor = [
        first_response(prepared, tmp / f"cold-js_floor-{i}.log", only="js_floor")
        for i in range(runs)
    ]
    starts = {**snapshot_starts(prepared, tmp, runs), "js_floor": medians(js_floor)}
    if python_floor:
        starts["py_floor"] = snapshot_starts(prepared, tmp, runs, "py_floor")
    return starts
