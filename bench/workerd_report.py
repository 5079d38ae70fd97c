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
    ("miss", "miss (the AI stand-in's answer ready-made)"),
    ("download", "signed download, full"),
    ("download_range", "signed download, `Range` (64 KiB)"),
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


def cold_table(cold: dict[str, Any]) -> list[str]:
    def row(what: str, run: dict[str, Any], runs: str) -> str:
        return (
            f"| {what} | {run['spawn_to_first_s']:.2f} s | {run['workerd_to_first_s']:.2f} s "
            f"| {run['cpu_runtime_ms'] / 1000:.2f} s | {run['cpu_proxy_ms'] / 1000:.2f} s "
            f"| {runs} |"
        )

    lines = [
        "| start | stack spawned → first 200 | runtime workerd started → first 200 "
        "| CPU of the runtime process by then | of the proxy process | runs |",
        "|---|---|---|---|---|---|",
        row(
            "plain (the top level runs: imports, the app built)",
            cold["plain"],
            f"median of {cold['plain']['n']}",
        ),
        row("saving a snapshot (`--python-save-snapshot`)", cold["save"], "1"),
    ]
    if "snapshot" in cold:
        lines.append(
            row(
                f"restoring the snapshot (`--python-load-snapshot {cold['snapshot_files'][0]}`)",
                cold["snapshot"],
                f"median of {cold['snapshot']['n']}",
            )
        )
    else:
        lines.append(f"| restoring the snapshot | not measured: {cold['snapshot_error']} | | | | |")
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
        "budget raised out of the way). The stack has two workerd processes, children of the "
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
            "budget ledger, the catalog) run there too. On Cloudflare the storage is I/O on "
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


def cold_notes(cold: dict[str, Any]) -> list[str]:
    if "snapshot" not in cold:
        return []
    plain, snap = cold["plain"], cold["snapshot"]
    return [
        f"Restoring the snapshot, the runtime process spends "
        f"{_ratio(plain['cpu_runtime_ms'], snap['cpu_runtime_ms'])} less CPU before its first "
        f"answer and answers {_ratio(plain['workerd_to_first_s'], snap['workerd_to_first_s'])} "
        "sooner after it starts. What the snapshot saves is the Worker's top level: loading "
        "the packages and building the FastAPI app (`src/entry.py` imports it at top level "
        "on purpose, so that it is in the snapshot). Stack spawned → first 200 also holds "
        "wrangler's own start (bundling, configuration, Miniflare), which Cloudflare does not "
        "have.",
    ]
