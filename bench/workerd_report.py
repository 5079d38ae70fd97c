"""The Worker's section of docs/benchmarks.md, from ``workerd_bench.run_worker_bench``.

Every figure is CPU per request of the stack's workerd processes; the Worker's own share
is that less the JS floor measured in the same run (the stack's own cost), and it is read
against the Python floor's own share (what Pyodide and FastAPI cost any Python Worker).
"""

from __future__ import annotations

from typing import Any

# (scenario, what it is)
PATHS: list[tuple[str, str]] = [
    ("healthz", "`GET /healthz`"),
    ("hit_url", "warm hit, `url`"),
    ("hit_b64_json", "warm hit, `b64_json`"),
    ("hit_b64_json_gzip", "warm hit, `b64_json`, the client accepting gzip"),
    ("miss", "miss (the AI stand-in's answer ready-made), signed"),
    ("miss_unsigned", "miss, `C2PA=false` (the Worker's copy `unsigned.bench`)"),
    ("miss_bare", "miss, `C2PA=false`, no `PROVENANCE`: no fingerprint (`bare.bench`)"),
    ("download", "signed download, full"),
    ("download_range", "signed download, `Range` (64 KiB)"),
    ("variant_first", "a variant's first download (`256.webp` of a fresh original), signed"),
    ("variant_first_unsigned", "a variant's first download, `C2PA=false` (`unsigned.bench`)"),
    ("async_submission", "async submission (`Prefer: respond-async`)"),
]
# (I/O scenario, what it is, the path that makes that I/O)
IO: list[tuple[str, str, str]] = [
    (
        "io_ai",
        "one `AI.run` of the stand-in (the gateway's multipart body, a 1.6 MB answer)",
        "miss",
    ),
    ("io_r2_put", "one R2 `put` of the image's size", "miss"),
    ("io_kv_hit", "the two KV reads of a hit (`cacheTtl: 60`)", "hit_url"),
    ("io_r2_b64", "an R2 object read whole and answered as a `b64_json` body", "hit_b64_json"),
    ("io_r2", "an R2 object streamed out, full", "download"),
    ("io_r2_range", "an R2 object streamed out, 64 KiB range", "download_range"),
]


def _ms(value: float) -> str:
    return f"{value:.1f} ms"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}×" if base > 0 else "–"


def _share(value: float, base: float) -> str:
    return f"{value / base:.0%}" if base > 0 else "–"


def cpu_tables(now: dict[str, Any]) -> list[str]:
    requests = now["requests"]
    js = requests["js_floor"]["median_ms"]
    py_own = requests["py_floor"]["median_ms"] - js
    lines = [
        "| request | CPU per request | of which the proxy | the Worker's own (− JS floor) "
        "| own vs the Python floor's own | batches × requests |",
        "|---|---|---|---|---|---|",
        f"| JS floor (`bench/floors/js.mjs`) | {_ms(js)} "
        f"| {_ms(requests['js_floor']['by_process_median_ms'].get('proxy', 0))} | – | – "
        f"| {requests['js_floor']['n']} × {requests['js_floor']['batch']} |",
    ]
    for name, what in [("py_floor", "Python floor (`bench/floors/fastapi/entry.py`)"), *PATHS]:
        row = requests.get(name)
        if row is None:
            lines.append(f"| {what} | not measured | | | | |")
            continue
        own = row["median_ms"] - js
        proxy = row["by_process_median_ms"].get("proxy", 0)
        versus = "1.00×" if name == "py_floor" else _ratio(own, py_own)
        lines.append(
            f"| {what} | {_ms(row['median_ms'])} | {_ms(proxy)} | {_ms(own)} | {versus} "
            f"| {row['n']} × {row['batch']} |"
        )
    jobs = now["async_jobs"]
    lines.append(
        f"| its job, run later by the queue's consumer (a miss in the consumer), per job "
        f"| {_ms(jobs['median_ms'])} | | | | {jobs['n']} batches |"
    )
    lines += [
        "",
        "The same I/O from plain JS (`bench/floors/io.mjs`, same stack, same KV namespace, "
        "bucket and stand-in), what any Worker pays here for it:",
        "",
        "| I/O | CPU per request | − JS floor | the path's own, less this |",
        "|---|---|---|---|",
    ]
    for name, what, path in IO:
        io = requests[name]["median_ms"]
        rest = requests[path]["median_ms"] - io if path in requests else None
        lines.append(
            f"| {what} | {_ms(io)} | {_ms(io - js)} "
            f"| {path}: {_ms(rest) if rest is not None else '–'} |"
        )
    return lines


GOAL_COLD_RATIO = 1.5  # a restored Worker's own first response, against the FastAPI floor's


def _own(run: dict[str, Any], cold: dict[str, Any]) -> float | None:
    """A cold start's own runtime CPU by its first 200, in ms: less the JS floor's (the
    stack's own start), medians both; None without the JS floor's."""
    js = cold.get("js_floor")
    return run["cpu_runtime_ms"] - js["cpu_runtime_ms"] if js else None


def cold_start_goal(cold: dict[str, Any]) -> tuple[float, bool] | None:
    """The cold-start goal: the Worker's own CPU to its first response, restored from its
    snapshot, over the Python floor's, restored from its own (runtime CPU less the JS
    floor's, medians), and whether it is within ``GOAL_COLD_RATIO``. None when a run lacks
    one of them (a snapshot not taken, the floors not measured)."""
    floor = cold.get("py_floor", {})
    if "snapshot" not in cold or "snapshot" not in floor:
        return None
    worker, python = _own(cold["snapshot"], cold), _own(floor["snapshot"], cold)
    if worker is None or python is None or python <= 0:
        return None
    ratio = worker / python
    return ratio, ratio <= GOAL_COLD_RATIO


def cold_table(cold: dict[str, Any]) -> list[str]:
    def seconds(ms: float | None) -> str:
        return f"{ms / 1000:.2f} s" if ms is not None else "–"

    def row(what: str, run: dict[str, Any], runs: str, own: bool = True) -> str:
        return (
            f"| {what} | {run['spawn_to_first_s']:.2f} s | {run['workerd_to_first_s']:.2f} s "
            f"| {run['cpu_runtime_ms'] / 1000:.2f} s "
            f"| {seconds(_own(run, cold)) if own else '–'} "
            f"| {run['cpu_proxy_ms'] / 1000:.2f} s | {runs} |"
        )

    def median(run: dict[str, Any]) -> str:
        return f"median of {run['n']}"

    def starts(who: str, plain: str, of: dict[str, Any]) -> list[str]:
        """Plain, saving, restoring: ``plain`` names the first row (what runs then)."""
        rows = [
            row(plain, of["plain"], median(of["plain"])),
            row(f"{who}, saving its snapshot (`--python-save-snapshot`)", of["save"], "1"),
        ]
        if "snapshot" in of:
            rows.append(
                row(
                    f"{who}, restoring its snapshot "
                    f"(`--python-load-snapshot {of['snapshot_files'][0]}`)",
                    of["snapshot"],
                    median(of["snapshot"]),
                )
            )
        else:
            rows.append(
                f"| {who}, restoring its snapshot | not measured: {of['snapshot_error']} "
                "| | | | | |"
            )
        return rows

    lines = [
        "| start | stack spawned → first 200 | runtime workerd started → first 200 "
        "| CPU of the runtime process by then | its own (− the JS floor's) "
        "| of the proxy process | runs |",
        "|---|---|---|---|---|---|---|",
    ]
    if "js_floor" in cold:
        js = cold["js_floor"]
        lines.append(
            row(
                "JS floor (`bench/floors/js.mjs`): the stack's own start",
                js,
                median(js),
                own=False,
            )
        )
    if "py_floor" in cold:
        lines += starts(
            "Python floor",
            "Python floor (`bench/floors/fastapi/entry.py`), plain (FastAPI imported, "
            "the app built)",
            cold["py_floor"],
        )
    lines += starts(
        "the Worker", "the Worker, plain (the top level runs: imports, the app built)", cold
    )
    return lines


def worker_section(now: dict[str, Any]) -> list[str]:
    requests, cold, seen = now["requests"], now["cold"], now["observed"]
    js = requests["js_floor"]["median_ms"]
    js_proxy = requests["js_floor"]["by_process_median_ms"].get("proxy", 0)
    py_own = requests["py_floor"]["median_ms"] - js
    idle = ", ".join(f"{role} {ms:.1f} ms/s" for role, ms in now["idle_ms_per_s"].items())
    lines = [
        "## The Worker on workerd: CPU per request",
        "",
        f"{now['workerd']} (wrangler {now['wrangler']}'s binary, offline on the Pyodide bundle "
        f"`scripts/prepare_workerd.py` builds), Pyodide {now['pyodide']} (Python 3.14, "
        "`python_workers_314`, what wrangler.toml's compatibility date selects), the locked "
        "`python_modules`, through wrangler's `createTestHarness` as the tests run the Worker "
        "(`bench/workerd_stack.mjs`: the local overlay of wrangler.toml, its rate limit and "
        "budget raised out of the way, a C2PA signing identity of its own: see Content "
        "Credentials below). The stack has two workerd processes, children of the "
        "runner: the harness's **proxy** (as under `wrangler dev`, it takes the request and "
        "forwards it) and the **runtime**, which runs the Workers and, beside them, Miniflare's "
        "KV, R2, Durable Objects, Queues and Cache. **CPU** is what Linux counts for both "
        f"(utime + stime of every thread in `/proc/<pid>/stat`, clock tick {now['clock_tick_ms']:g} "
        "ms) from before a batch of N requests until the processes are quiet after it (so "
        "`waitUntil` work is counted), divided by N. The requests come one at a time over "
        "loopback HTTP from the benchmark's own process, whose CPU is not counted, nor the "
        "Node runner's. N is sized per scenario from its warm-up "
        f"({now['warmup']} requests) so that a batch spends a few hundred ms; every round runs "
        f"one batch of every scenario, interleaved; {now['rounds']} rounds; the figures are "
        f"**medians** over them (minimum and maximum in the raw results). Idle: {idle}.",
        "",
        "The floors are served the same way, in the same stack and run, by their own host "
        "names: a trivial JS Worker (`bench/floors/js.mjs`), the stack's own cost (the proxy, "
        "workerd's HTTP, Miniflare's entry Worker), and a one-route FastAPI Worker behind the "
        "SDK's `workers.asgi` bridge on the same runtime and `python_modules` "
        "(`bench/floors/fastapi/entry.py`), the Python floor. **The Worker's own share** is "
        f"its CPU less the JS floor's ({_ms(js)}, {_ms(js_proxy)} of it in the proxy); the "
        f"last column reads it against the Python floor's own share ({_ms(py_own)}: what "
        "Pyodide, the bridge and FastAPI cost any Python Worker per request).",
        "",
        "The model is `bench/ai_fixed.mjs`: a stand-in bound as `AI` that drains the "
        "multipart body unparsed and answers one of four ready-made noisy 1024×768 PNGs "
        f"({seen['image_bytes'] / 1e6:.2f} MB, base64 in the binding's `image`). It runs in the "
        "runtime process, so what is left of it (the RPC, the body, the 1.6 MB string handed "
        "back) is measured alone from JS below and can be taken off the miss.",
        "",
        *cpu_tables(now),
        "",
        *notes(now),
        "",
        "### Content Credentials",
        "",
        *credentials_lines(now),
        "",
        "### Cold start",
        "",
        "A fresh stack (the Worker and the stand-in, no floors) per run, polled with "
        "`GET /healthz` until it answers 200 (`bench/workerd_cold.py`). On Cloudflare a deploy "
        "runs the Worker's top level once and saves a memory snapshot; every cold start "
        "restores it. workerd does the same offline: the launcher passes "
        "`$FLUXGATE_WORKERD_ARGS` to `workerd serve`, first "
        "`--python-save-snapshot --python-snapshot-dir D` (workerd writes "
        f"{_files(cold)} into D and goes on serving), then "
        "`--python-load-snapshot <that file> --python-snapshot-dir D`. Both flags work "
        "through Miniflare: it runs whatever `MINIFLARE_WORKERD_PATH` names with its own "
        "`serve` arguments, and the launcher adds these.",
        "",
        "The floors start cold the same way, each in a fresh stack of its own that runs it "
        "alone (`bench/workerd_stack.mjs --only`: no Worker, no stand-in, so that a snapshot "
        "is the floor's), polled with `GET /floor`: the JS floor, whose runtime CPU by its "
        "first 200 is the stack's own start (workerd, Miniflare's own Workers), and the "
        "Python floor, plain and with a snapshot of its own saved and restored with the "
        "Worker's flags. **Its own** is a start's runtime CPU by its first 200 less the JS "
        "floor's.",
        "",
        *cold_table(cold),
        "",
        *cold_notes(cold),
    ]
    return lines


def _files(cold: dict[str, Any]) -> str:
    files = cold["snapshot_files"]
    if len(files) != 1:
        return f"{len(files)} files ({', '.join(f'`{f}`' for f in files) or 'none'})"
    return f"one file, `{files[0]}` ({cold['snapshot_bytes'] / 1e6:.0f} MB),"


def notes(now: dict[str, Any]) -> list[str]:
    requests, seen = now["requests"], now["observed"]
    med = {name: row["median_ms"] for name, row in requests.items()}
    js = med["js_floor"]
    lines = ["What the figures hold:", ""]
    if "miss" in med:
        model = med["io_ai"] - js
        lines.append(
            f"- **Miss, the model excluded**: {_ms(med['miss'] - js)} of its own less "
            f"{_ms(model)} for the stand-in's call made from JS = {_ms(med['miss'] - js - model)}"
            f" ({_ratio(med['miss'] - js - model, med['py_floor'] - js)} the Python floor's "
            "own). That still holds, all in the runtime process, the storage Miniflare "
            f"emulates: the 1.2 MB R2 `put` alone costs {_ms(med['io_r2_put'] - js)} from JS, "
            "and the KV writes and the Durable Objects a miss calls (the coalescer, the "
            "budget ledger, the catalog, the provenance index) run there too. On Cloudflare the storage is I/O on "
            "other machines and each Durable Object is billed as its own; here they cannot be "
            "told apart from the Worker's CPU."
        )
    if "hit_url" in med:
        own, reads = med["hit_url"] - js, med["io_kv_hit"] - js
        lines.append(
            f"- **Warm hit, `url`**: {_ms(own)} of its own, of which its two KV reads cost "
            f"{_ms(reads)} from JS; the rest, {_ms(own - reads)} "
            f"({_ratio(own - reads, med['py_floor'] - js)} the Python floor's own), is the "
            "Worker's: the fast path (no FastAPI), the key's hash, the entry's parsing, the "
            "URL's HMAC, the JSON answer and the envelope (request id, access line)."
        )
    lines += [
        f"- **Warm hit, `b64_json`**: answered `X-Cache: {seen['hit_x_cache']}`, "
        f"{seen['b64_json_bytes'] / 1e6:.2f} MB: the image's R2 read, its base64 and the "
        "proxy's copy of the body. Every request here says `Accept-Encoding: identity`: "
        "Miniflare's entry Worker compresses what Cloudflare's edge would compress, in the "
        "runtime process, for a client that accepts it (answered `Content-Encoding: "
        f"{seen['b64_json_gzip_encoding']}`), and on Cloudflare that is the edge's work after "
        "the Worker, not the Worker's CPU. The row for a gzip-accepting client shows what it "
        f"costs here: {_ms(med.get('hit_b64_json_gzip', 0) - med.get('hit_b64_json', 0))} "
        "more for the 1.6 MB body.",
        f"- **Downloads** ({seen['download_bytes'] / 1e6:.2f} MB) answered `X-Edge-Cache: "
        f"{seen['download_x_edge_cache']}`: Miniflare implements the Cache API, so after the "
        "first a full download is served from the cache keyed by the object, as on a custom "
        "domain; a `Range` download reads R2 every time.",
        "- **Async submission**: the request records the job (its Durable Object) and "
        "queues it; the job itself runs later in the queue's consumer, in the same process, "
        "and its CPU (a miss, plus the job's bookkeeping) is measured after the batch, per job. "
        "Submission batches stay under the consumer's batch size and timeout so that it does "
        f"not run during them ({now['async_batches_dropped']} batch(es) slower than the "
        "timeout dropped).",
        f"- The clock tick is {now['clock_tick_ms']:g} ms per process; a batch spends tens of "
        "ticks, so the tick is a few per cent of a figure at most. Machine load from "
        "anything else still shows; the floors, measured in the same rounds, show it too.",
    ]
    return lines


def _difference(med: dict[str, float], js: float, more: str, less: str, what: str) -> str:
    """``more`` less ``less``, in ms, and as a share of ``more``'s CPU and of its own."""
    if more not in med or less not in med:
        return f"{what}: not measured"
    cost = med[more] - med[less]
    if cost <= 0:  # within the run's noise (a quick run's few requests, say)
        return f"nothing measurable {what} ({_ms(med[more])} against {_ms(med[less])})"
    return (
        f"{_ms(cost)} {what} ({_ms(med[more])} − {_ms(med[less])}: {_share(cost, med[more])} "
        f"of the CPU, {_share(cost, med[more] - js)} of the Worker's own)"
    )


def credentials_lines(now: dict[str, Any]) -> list[str]:
    requests, seen = now["requests"], now["observed"]
    med = {name: row["median_ms"] for name, row in requests.items()}
    js = med["js_floor"]
    c2pa = seen["c2pa"]
    signed, unsigned = c2pa["signed"], c2pa["unsigned"]
    variant = seen["variant"]
    on_miss = _difference(med, js, "miss", "miss_unsigned", "per miss")
    first = "per first variant download"
    on_variant = _difference(med, js, "variant_first", "variant_first_unsigned", first)
    return [
        "The Worker signs a C2PA manifest into every file it stores, as a deployment with a "
        "signing identity does: the stack's is made at its start (`bench/workerd_stack.py`: a "
        "P-256 key, its certificate under an intermediate, `tests/support/c2pa_chain.py`), "
        "without a time-stamp authority (`C2PA_TIMESTAMP_URL` unset: on Cloudflare that is a "
        "fetch to another machine). Two copies of it run in the same processes, by their own "
        "host names, as the floors do: `unsigned.bench`, the same Worker with `C2PA=false` "
        "(no manifest; the fingerprint and the provenance index as in the Worker), and "
        "`bare.bench`, with `C2PA=false` and no `PROVENANCE` binding (no fingerprint, no "
        "index write). Same code and configuration; the same KV namespace, R2 bucket and AI "
        "stand-in (Miniflare keeps one store per namespace and bucket, so storage costs all "
        "three the same); Durable Objects of their own, as another deployment has; no queue "
        "consumer (a queue has one, the Worker's). A first download is of the variant "
        f"`{variant}` of an original no one has asked a variant of: the originals (misses "
        "asking for the variant's signed URL) are made before the batches that download "
        "them, one per request, and the download makes the variant: the original read from "
        "R2, its transformation by the Images binding, its marks (the XMP and, signed, the "
        "manifest, with the original's as its parent ingredient), its R2 write, the index's "
        "record of its hash.",
        "",
        f"- **Signing costs** {on_miss}, and {on_variant}.",
        "- **The fingerprint** (the original rendered small and gray by the Images binding, "
        "its hash, the provenance index's Durable Object write) costs "
        f"{_difference(med, js, 'miss_unsigned', 'miss_bare', 'per miss')}.",
        "- **What a manifest weighs**: a signed original is "
        f"{signed['original_bytes'] / 1e6:.2f} MB, "
        f"{(signed['original_bytes'] - unsigned['original_bytes']) / 1e3:+.1f} kB on the "
        f"unsigned one; the variant {signed['variant_bytes'] / 1e3:.1f} kB, "
        f"{(signed['variant_bytes'] - unsigned['variant_bytes']) / 1e3:+.1f} kB (its manifest "
        "and, as its ingredient, the original's). Each run checks that the Worker's files "
        "carry a manifest and its copy's do not.",
        "- Miniflare's Images binding transforms in Node (sharp), in the runner process, "
        "whose CPU is not counted: what is counted of a variant's making and of a fingerprint "
        "is the binding's call (the image handed to the runner and the result back) and the "
        "Worker's own work. On Cloudflare the transformation is the Images service's, billed "
        "per unique transformation, not in the Worker's CPU.",
    ]


def cold_notes(cold: dict[str, Any]) -> list[str]:
    if "snapshot" not in cold:
        return []
    plain, snap = cold["plain"], cold["snapshot"]
    lines = [
        f"Restoring the snapshot, the runtime process spends "
        f"{_ratio(plain['cpu_runtime_ms'], snap['cpu_runtime_ms'])} less CPU before its first "
        f"answer and answers {_ratio(plain['workerd_to_first_s'], snap['workerd_to_first_s'])} "
        "sooner after it starts. What the snapshot saves is the Worker's top level: loading "
        "the packages and building the FastAPI app (`src/entry.py` imports it at top level "
        "on purpose, so that it is in the snapshot). Stack spawned → first 200 also holds "
        "wrangler's own start (bundling, configuration, Miniflare), which Cloudflare does not "
        "have.",
    ]
    return lines + _cold_floor_notes(cold)


def _cold_floor_notes(cold: dict[str, Any]) -> list[str]:
    """The Worker's cold start against the Python floor's: the goal, and both snapshots."""
    floor = cold.get("py_floor")
    if floor is None or "js_floor" not in cold:
        return []
    js = cold["js_floor"]["cpu_runtime_ms"]

    def ms(value: float) -> str:  # whole ms: the CPU is counted in clock ticks
        return f"{value:.0f} ms"

    goal_name = (
        f"**A restored Worker's first response ≤ {GOAL_COLD_RATIO:g}× the FastAPI floor's "
        "own (snapshot on both)**"
    )
    goal = cold_start_goal(cold)
    if goal is None:
        why = floor.get("snapshot_error", "the Python floor's own CPU is not positive")
        verdict = f"{goal_name}: not measured ({why})."
    else:
        ratio, met = goal
        worker, python = cold["snapshot"], floor["snapshot"]
        verdict = (
            f"{goal_name}: {'met' if met else '**not met**'} ({ratio:.2f}×): restored, the "
            f"Worker's runtime spends {ms(worker['cpu_runtime_ms'] - js)} of its own by its "
            f"first 200 ({ms(worker['cpu_runtime_ms'])} − the JS floor's {ms(js)}), the "
            f"Python floor's {ms(python['cpu_runtime_ms'] - js)} "
            f"({ms(python['cpu_runtime_ms'])} − {ms(js)}); they answer "
            f"{worker['workerd_to_first_s']:.2f} s and {python['workerd_to_first_s']:.2f} s "
            "after their runtime process starts."
        )
    worker_plain, python_plain = (
        cold["plain"]["cpu_runtime_ms"] - js,
        floor["plain"]["cpu_runtime_ms"] - js,
    )
    return [
        "",
        f"- {verdict}",
        f"- Plain (the top level running, no snapshot): the Worker's own {ms(worker_plain)}, "
        f"the Python floor's {ms(python_plain)} ({_ratio(worker_plain, python_plain)}): "
        "what Fluxgate's imports and app cost beyond FastAPI's when nothing is restored.",
        f"- **The snapshots' sizes**: the Worker's {_size(cold)}, the Python floor's "
        f"{_size(floor)}.",
    ]


def _size(of: dict[str, Any]) -> str:
    """A snapshot's size, or why there is none."""
    if "snapshot_bytes" not in of:
        return f"none ({of.get('snapshot_error', 'not taken')})"
    return f"`{of['snapshot_files'][0]}` {of['snapshot_bytes'] / 1e6:.1f} MB"
