// CPU per request of Fluxgate's Worker, in the Worker host (Pyodide 314, the locked wheels),
// against the floor: a one-route FastAPI app behind the same workers.asgi bridge, in the
// same isolate and run (bench/worker_floor.py). bench/run.py runs it and writes the table.
//
//   node_modules/node/bin/node --js-base-64 --expose-gc bench/worker.mjs [--quick] [--output FILE]
//                                   [--only NAME,...] [--profile NAME] [--js-profile FILE]
//
// Requests are made in process, one at a time, as workerd calls the Worker
// (host/environment.mjs). CPU is process.cpuUsage() of this Node process (user + system,
// every thread: the Python interpreter, the bindings' JS, V8's GC) from handing the request
// to the Worker until it has answered (its Response returned, its waitUntil work settled); pulling
// the body is the network's part and is not counted. KV and R2 are in-process doubles
// (host/memory_stores.mjs): Miniflare's clients would charge this process 1-10 ms per
// operation that is I/O on Cloudflare. Durable Object calls run in this isolate; their CPU
// is reported apart (on Cloudflare each object is its own isolate). Scenarios run
// interleaved in rounds, garbage collected before each batch. Cold figures come from fresh
// isolates. Results are JSON (to --output or stdout); --profile NAME prints a cProfile of
// that scenario to stderr, --js-profile writes V8's CPU profile of the measured rounds
// (summarised by bench/profile_summary.py).
import { randomBytes } from "node:crypto";
import { Session } from "node:inspector/promises";
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { createFixedAI } from "../host/ai.mjs";
import { startWorker } from "../host/environment.mjs";
import { noisyPng } from "../host/png.mjs";
import { ExecutionContext, callFetch, loadIsolate } from "../host/worker.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    output: { type: "string" },
    profile: { type: "string" },
    only: { type: "string" }, // comma-separated scenarios (the floor always runs)
    "js-profile": { type: "string" }, // V8's CPU profile of the measured rounds, to this file
    wheels: { type: "string", default: join(root, ".cache", "worker-wheels") },
  },
});
const QUICK = args.quick;
const ROUNDS = QUICK ? 3 : 20;
const PER_ROUND = QUICK ? 3 : 10;
const WARMUP = QUICK ? 3 : 20;
const IMPORT_RUNS = QUICK ? 1 : 3;
const PROFILED = ["hit_url", "miss", "download"];
const ORIGIN = "https://fluxgate.bench.workers.dev"; // the Cache API has no effect here
const silent = { log() {}, error: (...a) => console.error(...a) };

function cpuMs(since) {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  return { n: samples.length, median_ms: at(0.5), p90_ms: at(0.9), mean_ms: mean };
}

async function main() {
  const config = parseToml(readFileSync(join(root, "wrangler.toml"), "utf8"));
  for (const rule of config.ratelimits ?? []) rule.simple.limit = 1e9; // measure, not throttle
  const adminToken = randomBytes(32).toString("base64url");
  const vars = {
    ...config.vars,
    ADMIN_TOKEN: adminToken,
    URL_SIGNING_KEYS: `bench=${randomBytes(36).toString("base64url")}`,
    DAILY_BUDGET_USD: "1000000",
    RATE_LIMIT_PER_MINUTE: "1000000",
  };
  const images = [1, 2, 3, 4].map(() => noisyPng(1024, 768)); // about 1.2 MB each
  const ai = createFixedAI(images.map((png) => png.toString("base64")));
  const worker = await startWorker({ root, config, vars, ai, wheelDir: resolve(args.wheels), consume: false, stores: "memory", log: silent });

  // The floor, in the same isolate: bench/ on the module path, its own entry class.
  const py = worker.py;
  py.FS.mkdirTree("/session/bench");
  py.mountNodeFS("/session/bench", realpathSync(join(root, "bench")));
  py.runPython("import sys; sys.path.append('/session/bench')");
  const floorEntry = { module: py.pyimport("worker_floor"), dispatch: py.pyimport("_host_dispatch").call };
  const floorFetch = (request) => callFetch(floorEntry, request, worker.env, new ExecutionContext(() => {}));

  // One request; `served()` is called once the Worker has answered (its Response returned,
  // its waitUntil work settled) and before the body is read: pulling the body is the
  // network's part (on workerd an R2 stream or a Blob is piped out natively, not by the
  // Worker's JS), so it is not counted.
  const call = async (fetcher, request, expect, pending = worker.pending, served = () => {}) => {
    const response = await fetcher(request);
    while (pending.size) await Promise.all([...pending]);
    served();
    const body = new Uint8Array(await response.arrayBuffer());
    if (response.status !== expect) {
      throw new Error(`${request.method} ${new URL(request.url).pathname}: ${response.status}, expected ${expect}: ${new TextDecoder().decode(body.slice(0, 300))}`);
    }
    return { response, body };
  };
  // As a client sends it: with its Content-Length (which Node's Request does not add).
  const json = (path, body, headers = {}) => {
    const text = JSON.stringify(body);
    return new Request(`${ORIGIN}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers },
      body: text,
    });
  };

  const created = await call(worker.fetch, json("/v1/admin/keys", { name: "bench", scopes: ["images:generate", "images:read"] }, { authorization: `Bearer ${adminToken}` }), 201);
  const key = JSON.parse(new TextDecoder().decode(created.body)).key;
  const auth = { authorization: `Bearer ${key}` };
  const generation = (prompt, extra = {}, headers = {}) => json("/v1/images/generations", { prompt, width: 1024, height: 768, steps: 4, ...extra }, { ...auth, ...headers });

  // The cached generation the hits and downloads use.
  const first = await call(worker.fetch, generation("a lighthouse at dusk, bench hit"), 200);
  const url = JSON.parse(new TextDecoder().decode(first.body)).data[0].url;
  const fileUrl = new URL(url, ORIGIN).href;
  let misses = 0;
  let submissions = 0;

  // What the bindings' doubles cost this process for the I/O a path makes, done from plain
  // JS: a hit reads two KV keys (the API key's record, the cache entry), with cacheTtl as
  // the Worker does; a download streams the object out of R2.
  const { keys } = await worker.env.KV.list();
  const hitKeys = keys.map((k) => k.name).filter((name) => /^(apikey|cache):/.test(name));
  if (hitKeys.length !== 2) throw new Error(`expected one key record and one cache entry, got ${hitKeys}`);
  const objects = (await worker.env.IMAGES.list()).objects;
  if (objects.length !== 1) throw new Error(`expected the one image in R2, got ${objects.length}`);
  const objectKey = objects[0].key;
  // A variant of that image (a 256-px WebP), made once by the Images binding's double
  // before anything is measured: its downloads read it from R2 like an original's.
  const asked = await call(worker.fetch, generation("a lighthouse at dusk, bench hit", { variants: ["256.webp"] }), 200);
  const variantUrl = new URL(JSON.parse(new TextDecoder().decode(asked.body)).data[0].variants["256.webp"], ORIGIN).href;
  await call(worker.fetch, new Request(variantUrl), 200, worker.pending);
  // A key whose generations are moderated (output_moderation: block): a miss classifies
  // the image (the classifier double answers at once, "safe") before it is stored.
  const moderatedKey = await call(worker.fetch, json("/v1/admin/keys", { name: "bench-moderated", scopes: ["images:generate"], overrides: { output_moderation: "block" } }, { authorization: `Bearer ${adminToken}` }), 201);
  const moderated = { authorization: `Bearer ${JSON.parse(new TextDecoder().decode(moderatedKey.body)).key}` };
  let moderatedMisses = 0;
  const kvReads = async () => {
    const values = await Promise.all(hitKeys.map((name) => worker.env.KV.get(name, { cacheTtl: 60 })));
    return new Response(JSON.stringify({ ok: values.every(Boolean) }), { headers: { "content-type": "application/json" } });
  };
  const r2Stream = async (request) => {
    const range = request.headers.get("range") ? { range: { offset: 0, length: 65536 } } : {};
    const object = await worker.env.IMAGES.get(objectKey, range);
    return new Response(object.body, { status: range.range ? 206 : 200 });
  };

  const scenarios = {
    floor: { fetch: floorFetch, request: () => new Request(`${ORIGIN}/floor`), status: 200 },
    io_hit_kv_reads: { fetch: kvReads, request: () => new Request(`${ORIGIN}/io`), status: 200 },
    io_r2_stream: { fetch: r2Stream, request: () => new Request(`${ORIGIN}/io`), status: 200 },
    io_r2_stream_range: { fetch: r2Stream, request: () => new Request(`${ORIGIN}/io`, { headers: { range: "bytes=0-65535" } }), status: 206 },
    healthz: { request: () => new Request(`${ORIGIN}/healthz`), status: 200 },
    hit_url: { request: () => generation("a lighthouse at dusk, bench hit"), status: 200 },
    hit_b64_json: { request: () => generation("a lighthouse at dusk, bench hit", { response_format: "b64_json" }), status: 200 },
    miss: { request: () => generation(`a lighthouse at dusk, bench miss ${misses++}`), status: 200 },
    miss_moderated: { request: () => json("/v1/images/generations", { prompt: `a lighthouse at dusk, bench moderated ${moderatedMisses++}`, width: 1024, height: 768, steps: 4 }, moderated), status: 200 },
    async_submission: { request: () => generation(`a lighthouse at dusk, bench job ${submissions++}`, {}, { prefer: "respond-async" }), status: 202 },
    download: { request: () => new Request(fileUrl), status: 200 },
    download_range: { request: () => new Request(fileUrl, { headers: { range: "bytes=0-65535" } }), status: 206 },
    download_variant: { request: () => new Request(variantUrl), status: 200 },
  };
  if (args.only) {
    const wanted = new Set(["floor", ...args.only.split(",")]);
    for (const name of Object.keys(scenarios)) if (!wanted.has(name)) delete scenarios[name];
  }
  const samples = Object.fromEntries(Object.keys(scenarios).map((name) => [name, []]));
  const objectSamples = Object.fromEntries(Object.keys(scenarios).map((name) => [name, []]));
  const run = async (name, record) => {
    const scenario = scenarios[name];
    const request = scenario.request();
    const objectsBefore = worker.objectCpu.micros;
    const started = process.cpuUsage();
    await call(scenario.fetch ?? worker.fetch, request, scenario.status, worker.pending, () => {
      if (!record) return;
      samples[name].push(cpuMs(started));
      objectSamples[name].push((worker.objectCpu.micros - objectsBefore) / 1000);
    });
  };

  for (const name of Object.keys(scenarios)) for (let i = 0; i < WARMUP; i++) await run(name, false);
  const inspector = args["js-profile"] ? new Session() : null;
  if (inspector) {
    inspector.connect();
    await inspector.post("Profiler.enable");
    await inspector.post("Profiler.start");
  }
  // Garbage is collected (V8's and Python's) before each batch, outside the measurement, so
  // that each scenario pays for its own garbage rather than for the one before it.
  const pythonCollect = py.pyimport("gc").collect;
  const collect = () => {
    globalThis.gc?.();
    pythonCollect();
  };
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of Object.keys(scenarios)) {
      collect();
      for (let i = 0; i < PER_ROUND; i++) await run(name, true);
    }
  }
  if (inspector) {
    const { profile } = await inspector.post("Profiler.stop");
    writeFileSync(args["js-profile"], JSON.stringify(profile));
    inspector.disconnect();
  }

  if (args.profile) {
    if (!scenarios[args.profile]) throw new Error(`--profile: one of ${Object.keys(scenarios).join(", ")}`);
    py.runPython("import cProfile; _bench_profile = cProfile.Profile(); _bench_profile.enable()");
    for (let i = 0; i < ROUNDS * PER_ROUND; i++) await run(args.profile, false);
    const report = py.runPython(`
_bench_profile.disable()
import io, pstats
_out = io.StringIO()
_stats = pstats.Stats(_bench_profile, stream=_out).strip_dirs()
_stats.sort_stats("tottime").print_stats(30)
_stats.sort_stats("cumulative").print_stats(40)
_out.getvalue()`);
    console.error(report);
  }

  // Where the time goes, for the paths the goals are about: Python's own functions by
  // self time (cProfile in the isolate; a synchronous JS call counts in the Python
  // function that makes it), as shares of the profiled Python time.
  const profiles = {};
  py.runPython(`
import cProfile, json, pstats

def _bench_profile_start():
    global _bench_profile
    _bench_profile = cProfile.Profile()
    _bench_profile.enable()

def _bench_profile_stop(count):
    _bench_profile.disable()
    stats = pstats.Stats(_bench_profile).stats
    total = sum(v[2] for v in stats.values())
    rows = sorted(((v[2], f"{k[0].rsplit('/', 1)[-1]}:{k[1]} {k[2]}") for k, v in stats.items()), reverse=True)
    files = {}
    for k, v in stats.items():
        name = k[0].rsplit('/', 1)[-1]
        files[name] = files.get(name, 0) + v[2]
    return json.dumps({
        "python_ms_per_request": total * 1000 / count,
        "top": [[label, t / total] for t, label in rows[:12]],
        "files": {name: t / total for name, t in files.items()},
    })
`);
  const [profileStart, profileStop] = ["_bench_profile_start", "_bench_profile_stop"].map((name) => py.globals.get(name));
  for (const name of PROFILED.filter((n) => scenarios[n])) {
    const count = QUICK ? 5 : 50;
    profileStart();
    for (let i = 0; i < count; i++) await run(name, false);
    profiles[name] = JSON.parse(profileStop(count));
  }

  // The JS primitives a 1.2 MB image needs on the miss and b64_json paths, in this process.
  const primitives = { fromBase64: [], sha256: [], toBase64: [], blob_of_base64_json: [] };
  const encoded = images[0].toString("base64");
  for (let i = 0; i < (QUICK ? 3 : 30); i++) {
    let started = process.cpuUsage();
    const decoded = Uint8Array.fromBase64 ? Uint8Array.fromBase64(encoded) : new Uint8Array(Buffer.from(encoded, "base64"));
    primitives.fromBase64.push(cpuMs(started));
    started = process.cpuUsage();
    await crypto.subtle.digest("SHA-256", decoded);
    primitives.sha256.push(cpuMs(started));
    started = process.cpuUsage();
    const text = decoded.toBase64 ? decoded.toBase64() : Buffer.from(decoded).toString("base64");
    primitives.toBase64.push(cpuMs(started));
    started = process.cpuUsage();
    new Blob([String.raw({ raw: ['{"data":[{"b64_json":"', '"}]}'] }, text)]);
    primitives.blob_of_base64_json.push(cpuMs(started));
  }

  const results = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, summary(values)]));
  const floor = results.floor.median_ms;
  for (const [name, value] of Object.entries(results)) {
    value.vs_floor = value.median_ms / floor;
    // The Worker's own CPU: each request's total less what its Durable Object calls spent.
    const own = samples[name].map((total, i) => total - objectSamples[name][i]);
    value.objects_median_ms = summary(objectSamples[name]).median_ms;
    value.worker_median_ms = summary(own).median_ms;
    value.worker_vs_floor = value.worker_median_ms / floor;
  }
  const pyodide = py.version;
  await worker.close();

  // Cold: each run a fresh isolate. The import of the entry (on Workers: deploy time, into
  // the snapshot) and of the floor's app; then the first requests of the isolate, which pay
  // whatever is built per isolate rather than per request (the gateway from env, say).
  const cold = { entry: [], floor: [], first_healthz: [], first_miss: [], first_hit: [] };
  for (let i = 0; i < IMPORT_RUNS; i++) {
    const fresh = await startWorker({ root, config, vars, ai, wheelDir: resolve(args.wheels), consume: false, stores: "memory", log: silent });
    cold.entry.push(fresh.importCpuMs);
    const first = async (name, request, status) => {
      const started = process.cpuUsage();
      const { body } = await call(fresh.fetch, request, status, fresh.pending, () => cold[name].push(cpuMs(started)));
      return body;
    };
    await first("first_healthz", new Request(`${ORIGIN}/healthz`), 200);
    const made = await call(fresh.fetch, json("/v1/admin/keys", { name: "cold", scopes: ["images:generate"] }, { authorization: `Bearer ${adminToken}` }), 201, fresh.pending);
    const coldKey = JSON.parse(new TextDecoder().decode(made.body)).key;
    const coldGeneration = () => json("/v1/images/generations", { prompt: "a first light", width: 1024, height: 768, steps: 4 }, { authorization: `Bearer ${coldKey}` });
    await first("first_miss", coldGeneration(), 200);
    await first("first_hit", coldGeneration(), 200);
    await fresh.close();

    const floorIsolate = await loadIsolate({ root, wheelDir: resolve(args.wheels), compatibilityDate: config.compatibility_date, compatFlags: config.compatibility_flags, env: vars, log: silent });
    floorIsolate.FS.mkdirTree("/session/bench");
    floorIsolate.mountNodeFS("/session/bench", realpathSync(join(root, "bench")));
    floorIsolate.runPython("import sys; sys.path.append('/session/bench')");
    const started = process.cpuUsage();
    floorIsolate.pyimport("worker_floor");
    cold.floor.push(cpuMs(started));
  }

  const out = {
    pyodide,
    node: process.version,
    rounds: ROUNDS,
    per_round: PER_ROUND,
    warmup: WARMUP,
    image_bytes: images[0].length,
    model_calls: ai.stats().calls,
    classifier_calls: ai.stats().classified,
    requests: results,
    profiles,
    js_primitives: Object.fromEntries(Object.entries(primitives).map(([name, values]) => [name, summary(values)])),
    cold: Object.fromEntries(Object.entries(cold).map(([name, values]) => [name, summary(values)])),
  };
  const text = JSON.stringify(out, null, 2);
  if (args.output) writeFileSync(args.output, text);
  else console.log(text);
  process.exit(0);
}

main().catch((err) => {
  console.error(err?.stack ?? err);
  process.exit(1);
});
