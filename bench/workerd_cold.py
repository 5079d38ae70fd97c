"""The Worker's cold start on workerd: its first response after workerd starts, with and
without a memory snapshot.

On Cloudflare a deploy runs the Worker's top level once and saves a memory snapshot of it;
every cold start restores that snapshot instead of importing again. workerd does the same
offline with ``--python-save-snapshot --python-snapshot-dir D`` (it writes the snapshot
into D and goes on serving) and ``--python-load-snapshot <file> --python-snapshot-dir D``.
The launcher of ``scripts/prepare_workerd.py`` passes ``$FLUXGATE_WORKERD_ARGS`` to
``workerd serve``, so each cold start here is a fresh stack (the Worker and the AI stand-in,
no floors) started with or without those flags, polled with ``GET /healthz`` until it
answers 200.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from workerd_stack import TICK_MS, Prepared, Stack, started_at


def first_response(prepared: Prepared, log: Path, workerd_args: str = "") -> dict[str, float]:
    """One cold start: seconds from spawning the stack and from the runtime process's start
    to the first 200, and the CPU each workerd process had used by then."""
    with Stack(prepared, log, workerd_args=workerd_args) as stack, httpx.Client() as client:
        deadline = time.monotonic() + 180
        while True:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no 200 from /healthz within 180 s:\n{log.read_text()[-4000:]}")
            try:
                if client.get(f"{stack.url}/healthz", timeout=60).status_code == 200:
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


def cold_starts(prepared: Prepared, tmp: Path, runs: int) -> dict[str, Any]:
    """Plain cold starts, the run that saves the snapshot, and cold starts restoring it."""
    plain = [first_response(prepared, tmp / f"cold-{i}.log") for i in range(runs)]
    snapshots = tmp / "snapshots"
    snapshots.mkdir()
    save = first_response(
        prepared,
        tmp / "cold-save.log",
        f"--python-save-snapshot --python-snapshot-dir {snapshots}",
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
            tmp / f"cold-snapshot-{i}.log",
            f"--python-load-snapshot {written[0]} --python-snapshot-dir {snapshots}",
        )
        for i in range(runs)
    ]
    result["snapshot"] = medians(restored)
    return result
