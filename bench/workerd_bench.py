"""CPU per request of the Worker on real workerd, beside its floors, in one stack and run.

One stack (``bench/workerd_stack.mjs --floors``) serves Fluxgate's Worker, the benchmark's
AI stand-in and, by their own host names, the JS floor, the Python floor and the I/O Worker
(the same KV, R2 and AI calls from plain JS). Requests come from this process over HTTP,
one at a time. A **batch** is N requests of one scenario; its CPU is the growth of
utime + stime of the stack's workerd processes from before the first request until the
processes are quiet after the last (so ``waitUntil`` work and anything else the requests
set off is counted), divided by N. N is sized per scenario from its warm-up so that a batch
spends enough CPU for the clock tick (10 ms) not to matter. Every round runs one batch of
every scenario, interleaved, so that drift touches them all alike; figures are medians over
the rounds.

An async submission's job runs later in the queue's consumer, in the same processes: its
batches stay under the consumer's batch size and timeout (10 messages, 1 s), and the CPU
of the jobs they queued is measured after it, apart.

What Content Credentials cost: the Worker signs (the stack gives it a signing identity);
copies of it, in the same processes by their own host names, do not (``C2PA=false``) or
keep no fingerprint either (no ``PROVENANCE`` binding). A miss and a variant's first
download are measured on each, in the same rounds. A first download needs an original
whose variant no one has asked for: those are made (misses asking for the variant's signed
URL) before the batches that download them, never during one.
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from workerd_cold import cold_starts
from workerd_profile import (
    INSPECTOR_ARGS,
    SAMPLING_INTERVAL_US,
    Inspector,
    analyse,
    export_names,
    isolates,
)
from workerd_pyprofile import profile_python
from workerd_stack import ROOT, TICK_MS, Prepared, Stack, prepare, versions

PROMPT = "a lighthouse at dusk, bench"
GZIP = {"accept-encoding": "gzip"}
CONSUMER_BATCH = 10  # wrangler.toml [[queues.consumers]] max_batch_size
CONSUMER_TIMEOUT_S = 1.0  # ... max_batch_timeout
VARIANT = "256.webp"  # the variant whose first download is measured


@dataclass(frozen=True)
class Plan:
    """How much to measure: quick mode only checks that it all runs."""

    quick: bool
    rounds: int
    warmup: int
    batch_cpu_ms: float  # what a batch should spend, to size it
    max_batch: int
    cold_runs: int
    profile_cpu_ms: float  # what each profiled path should spend under the profiler

    @classmethod
    def for_mode(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 1, 3, batch_cpu_ms=60, max_batch=40, cold_runs=1, profile_cpu_ms=0)
        return cls(False, 15, 20, batch_cpu_ms=400, max_batch=400, cold_runs=3, profile_cpu_ms=3000)


@dataclass
class Scenario:
    """One kind of request: how to make one, and the status it must answer."""

    name: str
    request: Callable[[], httpx.Request]
    status: int
    max_batch: int | None = None
    queues_jobs: bool = False  # async submission: its jobs' CPU is measured after the batch
    # What ``n`` of its requests need made first (fresh originals), called outside the
    # measured batches: before each warm-up batch, and for every round before the rounds.
    prepare: Callable[[int], None] | None = None


def quiet(stack: Stack, poll_s: float = 0.05, still: int = 3, limit_s: float = 5.0) -> list[int]:
    """The processes' ticks once they stopped moving for ``still`` polls in a row."""
    last, unchanged = stack.ticks(), 0
    deadline = time.monotonic() + limit_s
    while unchanged < still and time.monotonic() < deadline:
        time.sleep(poll_s)
        now = stack.ticks()
        unchanged = unchanged + 1 if now == last else 0
        last = now
    return last


def batch(
    stack: Stack, client: httpx.Client, scenario: Scenario, n: int
) -> tuple[list[int], float]:
    """Ticks per process spent by ``n`` requests, and the wall time they took."""
    before = quiet(stack)
    started = time.monotonic()
    for _ in range(n):
        response = client.send(scenario.request())
        if response.status_code != scenario.status:
            raise RuntimeError(
                f"{scenario.name}: {response.status_code}, expected {scenario.status}: "
                f"{response.text[:300]}"
            )
    wall = time.monotonic() - started
    after = quiet(stack)
    return [a - b for a, b in zip(after, before, strict=True)], wall


def jobs_settled(stack: Stack) -> list[int]:
    """Ticks per process until the queue's consumer has run the jobs just queued."""
    before = stack.ticks()
    time.sleep(CONSUMER_TIMEOUT_S + 0.3)
    after = quiet(stack, poll_s=0.1, still=5, limit_s=60)
    return [a - b for a, b in zip(after, before, strict=True)]


class Fixture:
    """The data the scenarios need: an API key, a cached generation, its signed URL, the
    KV keys a hit reads and the R2 key of the image."""

    def __init__(self, stack: Stack, client: httpx.Client) -> None:
        self.stack, self.client = stack, client
        made = client.post(
            "/v1/admin/keys",
            json={"name": "bench", "scopes": ["images:generate", "images:read"]},
            headers={"authorization": f"Bearer {stack.admin_token}"},
        )
        made.raise_for_status()
        self.auth = {"authorization": f"Bearer {made.json()['key']}"}
        first = client.post("/v1/images/generations", json=self.body(), headers=self.auth)
        first.raise_for_status()
        assert first.headers["x-cache"] == "MISS", first.text
        self.image_bytes: int = first.json()["bytes"]
        self.file_url: str = first.json()["data"][0]["url"]
        io = stack.hosts["io"]
        keys = client.get("/kv/list", headers={"host": io}).json()
        self.hit_keys = [k for k in keys if k.startswith(("apikey:", "cache:"))]
        assert len(self.hit_keys) == 2, keys
        objects = client.get("/r2/list", headers={"host": io}).json()
        assert len(objects) == 1 and objects[0].startswith("images/"), objects
        self.object_key: str = objects[0]
        self.counter = 0

    def body(self, prompt: str = PROMPT, **extra: Any) -> dict[str, Any]:
        return {"prompt": prompt, "width": 1024, "height": 768, "steps": 4, **extra}

    def fresh(self, what: str) -> str:
        self.counter += 1
        return f"{PROMPT} {what} {self.counter}"

    def generation(
        self, body: dict[str, Any], host: str | None = None, **headers: str
    ) -> httpx.Request:
        return self.client.build_request(
            "POST",
            "/v1/images/generations",
            json=body,
            headers={**self.auth, **headers, **({"host": host} if host else {})},
        )

    def get(self, url: str, host: str | None = None, **headers: str) -> httpx.Request:
        return self.client.build_request(
            "GET", url, headers={**headers, **({"host": host} if host else {})}
        )


def local(url: str) -> str:
    """A URL the Worker answered, as a path and query: a copy's answers name its host,
    which only the stack's own address reaches (with that ``Host``)."""
    return httpx.URL(url).raw_path.decode("ascii")


class FirstDownloads:
    """Variants never downloaded yet, on one of the Worker's hosts: each request takes the
    signed URL of the variant of an original made for it alone (a miss asking for that
    variant's URL), so that the download makes the variant (the Images binding, its marks,
    its signed manifest, its R2 write) rather than reading one made before."""

    def __init__(self, fx: Fixture, host: str | None, what: str) -> None:
        self.fx, self.host, self.what = fx, host, what
        self.fresh: list[tuple[str, str]] = []  # (the variant's URL, the original's), unused

    def make(self, n: int) -> None:
        """``n`` more fresh originals, and their variant's signed URL."""
        for _ in range(n):
            body = self.fx.body(self.fx.fresh(self.what), variants=[VARIANT])
            made = self.fx.client.send(self.fx.generation(body, self.host))
            made.raise_for_status()
            assert made.headers["x-cache"] == "MISS", made.text
            data = made.json()["data"][0]
            self.fresh.append((local(data["variants"][VARIANT]), local(data["url"])))

    def request(self) -> httpx.Request:
        if not self.fresh:
            raise RuntimeError(f"{self.what}: no fresh original left (make() too few)")
        variant, _ = self.fresh.pop(0)
        return self.fx.get(variant, self.host)


def scenarios(fx: Fixture) -> list[Scenario]:
    hosts = fx.stack.hosts
    io = hosts["io"]
    kv = "&".join(f"key={k}" for k in fx.hit_keys)
    r2 = f"/r2?key={fx.object_key}"
    first_64k = "bytes=0-65535"
    unsigned, bare = hosts["unsigned"], hosts["bare"]
    signed_variants = FirstDownloads(fx, None, "variant")
    unsigned_variants = FirstDownloads(fx, unsigned, "variant unsigned")
    return [
        Scenario("js_floor", lambda: fx.get("/floor", hosts["js_floor"]), 200),
        Scenario("py_floor", lambda: fx.get("/floor", hosts["py_floor"]), 200),
        Scenario("healthz", lambda: fx.get("/healthz"), 200),
        Scenario("hit_url", lambda: fx.generation(fx.body()), 200),
        Scenario("hit_b64_json", lambda: fx.generation(fx.body(response_format="b64_json")), 200),
        Scenario(
            "hit_b64_json_gzip",
            lambda: fx.generation(fx.body(response_format="b64_json"), **GZIP),
            200,
        ),
        Scenario("miss", lambda: fx.generation(fx.body(fx.fresh("miss"))), 200),
        Scenario(
            "miss_unsigned",
            lambda: fx.generation(fx.body(fx.fresh("miss unsigned")), unsigned),
            200,
        ),
        Scenario("miss_bare", lambda: fx.generation(fx.body(fx.fresh("miss bare")), bare), 200),
        Scenario("variant_first", signed_variants.request, 200, prepare=signed_variants.make),
        Scenario(
            "variant_first_unsigned",
            unsigned_variants.request,
            200,
            prepare=unsigned_variants.make,
        ),
        Scenario("download", lambda: fx.get(fx.file_url), 200),
        Scenario("download_range", lambda: fx.get(fx.file_url, range=first_64k), 206),
        Scenario("io_ai", lambda: fx.get("/ai", io), 200),
        Scenario("io_kv_hit", lambda: fx.get(f"/kv?{kv}", io), 200),
        Scenario("io_r2", lambda: fx.get(r2, io), 200),
        Scenario("io_r2_range", lambda: fx.get(r2, io, range=first_64k), 206),
        Scenario("io_r2_b64", lambda: fx.get(f"/r2/b64?key={fx.object_key}", io), 200),
        Scenario("io_r2_put", lambda: fx.get(f"/r2/put?bytes={fx.image_bytes}", io), 200),
        Scenario(
            "async_submission",
            lambda: fx.generation(fx.body(fx.fresh("job")), prefer="respond-async"),
            202,
            max_batch=CONSUMER_BATCH - 1,
            queues_jobs=True,
        ),
    ]


def carries_manifest(content: bytes) -> bool:
    """Whether a file holds a C2PA manifest store (a JUMBF superbox labelled ``c2pa``)."""
    return b"jumb" in content and b"c2pa" in content


def signing_observed(fx: Fixture) -> dict[str, Any]:
    """What a manifest weighs, and that the Worker signs and its copies do not (a Worker
    that fails to sign stores its images unsigned and answers as usual: without this
    check the comparison could measure nothing). One more original and first variant
    download per host, before the measurement."""
    seen: dict[str, Any] = {}
    for name, host in (("signed", None), ("unsigned", fx.stack.hosts["unsigned"])):
        made = FirstDownloads(fx, host, f"observed {name}")
        made.make(1)
        original = fx.client.send(fx.get(made.fresh[0][1], host))
        variant = fx.client.send(made.request())
        for response in (original, variant):
            response.raise_for_status()
        seen[name] = {
            "original_bytes": len(original.content),
            "original_manifest": carries_manifest(original.content),
            "variant_bytes": len(variant.content),
            "variant_manifest": carries_manifest(variant.content),
        }
        signed = name == "signed"
        if {seen[name]["original_manifest"], seen[name]["variant_manifest"]} != {signed}:
            raise RuntimeError(f"the {name} Worker's files: {seen[name]}")
    return seen


def observed(fx: Fixture) -> dict[str, Any]:
    """What the paths answered, for the report: that a hit is a hit, which edge-cache path
    a download took, how big the answers are, what is signed."""
    client = fx.client
    hit = client.send(fx.generation(fx.body()))
    b64 = client.send(fx.generation(fx.body(response_format="b64_json")))
    gzipped = client.send(fx.generation(fx.body(response_format="b64_json"), **GZIP))
    download = client.send(fx.get(fx.file_url))
    return {
        "hit_x_cache": hit.headers.get("x-cache"),
        "b64_json_bytes": len(b64.content),
        "b64_json_gzip_encoding": gzipped.headers.get("content-encoding"),
        "download_bytes": len(download.content),
        "download_x_edge_cache": download.headers.get("x-edge-cache"),
        "image_bytes": fx.image_bytes,
    }


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
    }


def measure(stack: Stack, plan: Plan) -> dict[str, Any]:
    # Compression is the edge's work on Cloudflare, after the Worker; Miniflare emulates it
    # in the runtime process for a client that accepts gzip. One scenario asks for it.
    identity = {"accept-encoding": "identity"}
    with httpx.Client(base_url=stack.url, timeout=120, headers=identity) as client:
        fx = Fixture(stack, client)
        signing = signing_observed(fx)
        plan_scenarios = scenarios(fx)
        roles = stack.roles()
        sizes: dict[str, int] = {}
        for scenario in plan_scenarios:  # warm-up, and each batch's size from it
            limit = min(plan.max_batch, scenario.max_batch or plan.max_batch)
            spent, done = 0, 0
            while done < plan.warmup:  # in batches a real one could be: no jobs counted
                n = min(limit, plan.warmup - done)
                if scenario.prepare is not None:
                    scenario.prepare(n)
                ticks, _ = batch(stack, client, scenario, n)
                if scenario.queues_jobs:
                    jobs_settled(stack)
                spent, done = spent + sum(ticks), done + n
            per_request = max(spent * TICK_MS / done, 0.1)
            sizes[scenario.name] = max(3, min(limit, math.ceil(plan.batch_cpu_ms / per_request)))
        for scenario in plan_scenarios:  # what every round's batches will use, made now
            if scenario.prepare is not None:
                scenario.prepare(sizes[scenario.name] * plan.rounds)
        idle_before = stack.ticks()
        time.sleep(2)
        idle = [(a - b) * TICK_MS / 2 for a, b in zip(stack.ticks(), idle_before, strict=True)]

        totals: dict[str, list[float]] = {s.name: [] for s in plan_scenarios}
        by_role: dict[str, dict[str, list[float]]] = {s.name: {} for s in plan_scenarios}
        jobs: list[float] = []
        late = 0
        for _ in range(plan.rounds):
            for scenario in plan_scenarios:
                n = sizes[scenario.name]
                ticks, wall = batch(stack, client, scenario, n)
                if scenario.queues_jobs:
                    jobs.append(sum(jobs_settled(stack)) * TICK_MS / n)
                    if wall >= CONSUMER_TIMEOUT_S:  # the consumer may have run meanwhile
                        late += 1
                        continue
                totals[scenario.name].append(sum(ticks) * TICK_MS / n)
                for role, spent in zip(roles, ticks, strict=True):
                    by_role[scenario.name].setdefault(role, []).append(spent * TICK_MS / n)
        seen = {**observed(fx), "variant": VARIANT, "c2pa": signing}

    requests = {name: summary(values) for name, values in totals.items() if values}
    for name, row in requests.items():
        row["batch"] = sizes[name]
        row["by_process_median_ms"] = {
            role: statistics.median(values) for role, values in by_role[name].items()
        }
    return {
        "rounds": plan.rounds,
        "warmup": plan.warmup,
        "processes": roles,
        "idle_ms_per_s": dict(zip(roles, idle, strict=True)),
        "requests": requests,
        "async_jobs": summary(jobs),
        "async_batches_dropped": late,
        "observed": seen,
    }


# The paths profiled, and the Worker whose isolate serves each (Fluxgate's unless named).
PROFILED = (
    "js_floor",
    "py_floor",
    "healthz",
    "hit_url",
    "hit_b64_json",
    "download",
    "miss",
    "async_submission",
)
PROFILED_WORKER = {"js_floor": "bench-js-floor", "py_floor": "bench-py-floor"}
PYODIDE_WASM = ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm"


def profile_paths(
    prepared: Prepared, log: Path, plan: Plan, sizes: dict[str, int]
) -> dict[str, Any]:
    """A V8 profile of each of :data:`PROFILED` on a stack of its own (with the inspector
    on: the measured stack runs without it), in batches the measured run sized
    (``sizes``). An async submission's batches stay under the consumer's batch size and
    are profiled only while they are sent; their jobs run, unprofiled, between them."""
    names = export_names(PYODIDE_WASM)
    identity = {"accept-encoding": "identity"}
    profiles: dict[str, Any] = {}
    with (
        Stack(prepared, log, floors=True, workerd_args=INSPECTOR_ARGS) as stack,
        httpx.Client(base_url=stack.url, timeout=120, headers=identity) as client,
    ):
        fx = Fixture(stack, client)
        by_name = {s.name: s for s in scenarios(fx)}
        urls = isolates(stack.pids[stack.roles().index("runtime")])
        for name in PROFILED:
            scenario = by_name[name]
            inspector = Inspector(urls[PROFILED_WORKER.get(name, "fluxgate")])
            try:
                inspector.call("Profiler.enable")
                inspector.call("Profiler.setSamplingInterval", interval=SAMPLING_INTERVAL_US)
                if scenario.prepare is not None:
                    scenario.prepare(plan.warmup)
                batch(stack, client, scenario, plan.warmup)
                if scenario.queues_jobs:
                    jobs_settled(stack)
                n = sizes[name]
                rounds = max(1, round(plan.profile_cpu_ms / plan.batch_cpu_ms))
                taken = []
                for _ in range(rounds):
                    if scenario.prepare is not None:
                        scenario.prepare(n)
                    quiet(stack)
                    inspector.call("Profiler.start")
                    for _ in range(n):  # stopped right after: no queued job is profiled
                        answer = client.send(scenario.request())
                        if answer.status_code != scenario.status:
                            raise RuntimeError(f"{name}: {answer.status_code} {answer.text[:300]}")
                    taken.append(inspector.call("Profiler.stop")["profile"])
                    if scenario.queues_jobs:
                        jobs_settled(stack)
            finally:
                inspector.close()
            profiles[name] = analyse(taken, n * rounds, names).to_json()
    return profiles


def run_worker_bench(quick: bool) -> dict[str, Any]:
    """The whole Worker benchmark: the stack with its floors, then the cold starts."""
    plan = Plan.for_mode(quick)
    prepared = prepare()
    with tempfile.TemporaryDirectory(prefix="fluxgate-workerd-bench-") as name:
        tmp = Path(name)
        with Stack(prepared, tmp / "stack.log", floors=True) as stack:
            measured = measure(stack, plan)
        if not plan.quick:  # quick mode checks that the benchmark runs: no profile
            sizes = {name: row["batch"] for name, row in measured["requests"].items()}
            measured["profiles"] = profile_paths(prepared, tmp / "profile.log", plan, sizes)
            measured["python_profiles"] = profile_python(prepared, tmp / "python-profile.log")
        cold = cold_starts(prepared, tmp, plan.cold_runs, python_floor=not plan.quick)
    return {
        **versions(prepared),
        "clock_tick_ms": TICK_MS,
        **measured,
        "cold": cold,
    }
