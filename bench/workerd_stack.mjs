// The Worker benchmark's stack on real workerd: wrangler's test harness (Miniflare on the
// workerd that scripts/prepare_workerd.py prepares), as the tests run it, with the
// benchmark's cheap AI stand-in (bench/ai_fixed.mjs) in place of the tests' one. bench/run.py
// starts it and counts the CPU of its workerd processes (this process's children).
//
//   node bench/workerd_stack.mjs [--floors | --only js_floor|py_floor | --python-profile]
//
// The Worker is the local overlay of wrangler.toml (worker/local/overlay.mjs; AI bound to
// the stand-in), with its rate limit raised out of the way (the overlay is written next to
// wrangler.toml under the name writeOverlay gives that variant, and left there, as the
// tests leave theirs). `--floors` adds, in the same workerd processes and reached by their
// own host names (routes): the JS floor (bench/floors/js.mjs), the Python floor
// (bench/floors/fastapi/entry.py, the Worker's runtime and python_modules), the I/O Worker
// (bench/floors/io.mjs), and two copies of the Worker itself, the same code and
// configuration but for what they leave out (see COPIES): what Content Credentials and the
// perceptual fingerprint cost is the Worker less a copy, measured in the same processes.
// Secrets (ADMIN_TOKEN, URL_SIGNING_KEYS, C2PA_SIGNING_KEY, C2PA_CERTIFICATE_CHAIN) come from
// the environment; `$FLUXGATE_WORKERD_ARGS` reaches `workerd serve` (the memory-snapshot
// flags). `--only js_floor` or `--only py_floor` runs that floor alone, with neither the
// Worker nor the stand-in (the cold starts of bench/workerd_cold.py: a memory snapshot is
// then that floor's, the only Python Worker of the stack). When it serves, one JSON line
// goes to stdout: {"event": "ready", "url", "hosts": {floor or copy name: host}}. SIGTERM
// closes it.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse, stringify } from "smol-toml";
import { createTestHarness } from "wrangler";
import { ROOT, STANDIN, writeOverlay } from "../worker/local/overlay.mjs";

const { values: args } = parseArgs({
  options: {
    floors: { type: "boolean", default: false },
    only: { type: "string" },
    "python-profile": { type: "boolean", default: false },
  },
});
const ALONE = ["js_floor", "py_floor"];
if (args.only !== undefined && (args.floors || !ALONE.includes(args.only))) {
  throw new Error(`--only takes one of ${ALONE.join(", ")}, without --floors; got ${args.only}`);
}
const UNLIMITED = 1_000_000;
const project = parse(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
const runtime = { compatibility_date: project.compatibility_date, compatibility_flags: project.compatibility_flags };
const kv = project.kv_namespaces.find((namespace) => namespace.binding === "KV");
const bucket = project.r2_buckets.find((b) => b.binding === "IMAGES");

const HOSTS = {
  js_floor: "js-floor.bench",
  py_floor: "py-floor.bench",
  io: "io.bench",
  unsigned: "unsigned.bench",
  bare: "bare.bench",
};
const route = (host) => [{ pattern: `${host}/*`, zone_name: "bench" }];
const floors = {
  js_floor: { config: { name: "bench-js-floor", main: "bench/floors/js.mjs", compatibility_date: project.compatibility_date, routes: route(HOSTS.js_floor) } },
  py_floor: { config: { name: "bench-py-floor", main: "bench/floors/fastapi/entry.py", ...runtime, routes: route(HOSTS.py_floor) } },
  io: {
    config: {
      name: "bench-io",
      main: "bench/floors/io.mjs",
      compatibility_date: project.compatibility_date,
      routes: route(HOSTS.io),
      kv_namespaces: [{ binding: "KV", id: kv.id }],
      r2_buckets: [{ binding: "IMAGES", bucket_name: bucket.bucket_name }],
      services: [{ binding: "AI", service: STANDIN }],
    },
  },
};

// The Worker's copies: `unsigned` is the Worker with `C2PA=false` (no Content Credentials;
// the fingerprint and the provenance index as in the Worker), `bare` leaves out the
// PROVENANCE binding as well (no fingerprint, no index write). Each shares the Worker's KV
// namespace, R2 bucket and AI stand-in (Miniflare keeps one store per namespace id and
// bucket name: the API key the benchmark makes works on all three, and their storage costs
// the same) but has Durable Objects of its own (Miniflare gives each Worker its own
// namespaces), as a second deployment would. They have no queue consumer: a queue has one,
// the Worker's, and the copies are only asked for synchronous generations and downloads.
const COPIES = {
  unsigned: { vars: { C2PA: "false" }, objectsLeftOut: [] },
  bare: { vars: { C2PA: "false" }, objectsLeftOut: ["PROVENANCE"] },
};

// The copy's configuration, next to the overlay (wrangler finds `main` and python_modules/
// relative to it; the name matches the overlays' in .gitignore), written only when it
// changed and atomically, as writeOverlay writes the overlay.
function writeCopy(overlay, copy, objectsLeftOut) {
  const config = parse(readFileSync(overlay, "utf8"));
  config.name = `${config.name}-bench-${copy}`;
  config.routes = route(HOSTS[copy]);
  config.queues = { producers: config.queues.producers };
  const objects = config.durable_objects.bindings;
  for (const name of objectsLeftOut) {
    if (!objects.some((binding) => binding.name === name)) throw new Error(`the overlay has no Durable Object binding ${name}`);
  }
  config.durable_objects.bindings = objects.filter((binding) => !objectsLeftOut.includes(binding.name));
  const path = overlay.replace(/\.toml$/, `.bench-${copy}.toml`);
  const text = `# Written by bench/workerd_stack.mjs from ${overlay.slice(ROOT.length + 1)} (the benchmark's ${copy} copy). Do not edit.\n${stringify(config)}\n`;
  if (existsSync(path) && readFileSync(path, "utf8") === text) return path;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
  return path;
}

// The Worker, its stand-in and, with --floors, the floors and the Worker's copies.
function fluxgateWorkers() {
  const overlay = writeOverlay({ ratelimits: { RATE_LIMIT_STANDARD: { limit: UNLIMITED, period: 60 } } });
  const SECRETS = ["ADMIN_TOKEN", "URL_SIGNING_KEYS", "C2PA_SIGNING_KEY", "C2PA_CERTIFICATE_CHAIN"];
  const secrets = Object.fromEntries(SECRETS.filter((name) => process.env[name]).map((name) => [name, process.env[name]]));
  // A day's signed URLs: the benchmark signs its variant URLs before its rounds, which may
  // outlast the default hour.
  const vars = { DAILY_BUDGET_USD: String(UNLIMITED), RATE_LIMIT_PER_MINUTE: String(UNLIMITED), SIGNED_URL_TTL_SECONDS: "86400" };
  const copies = Object.entries(args.floors ? COPIES : {}).map(([copy, { vars: own, objectsLeftOut }]) => ({
    configPath: writeCopy(overlay, copy, objectsLeftOut),
    vars: { ...vars, ...own },
    secrets,
  }));
  const main = args["python-profile"] ? writeProfiled(overlay) : overlay;
  return [
    { configPath: main, vars, secrets },
    { configPath: join(ROOT, "bench", "ai_fixed.toml") },
    ...(args.floors ? Object.values(floors) : []),
    ...copies,
  ];
}

// --python-profile: the Worker's entry is bench/python_profile/entry.py, which
// bench/workerd_pyprofile.py has copied next to src/entry.py as PROFILED_ENTRY, with
// precise timers (3 ms steps) for its profiler. No floors, no copies.
const PROFILED_ENTRY = "src/_bench_python_profile.py";
function writeProfiled(overlay) {
  if (!existsSync(join(ROOT, PROFILED_ENTRY))) throw new Error(`${PROFILED_ENTRY} is missing`);
  const config = parse(readFileSync(overlay, "utf8"));
  config.main = PROFILED_ENTRY;
  config.compatibility_flags = [...config.compatibility_flags, "precise_timers"];
  const path = overlay.replace(/\.toml$/, ".bench-python-profile.toml");
  writeFileSync(path, `# Written by bench/workerd_stack.mjs from ${overlay.slice(ROOT.length + 1)} (the Python profile). Do not edit.\n${stringify(config)}\n`);
  return path;
}

// With --only, the floor is the harness's first and only Worker: what reaches the stack's
// address, by its host name or not, reaches it.
const workers = args.only === undefined ? fluxgateWorkers() : [floors[args.only]];
const hosts = args.only === undefined ? (args.floors ? HOSTS : {}) : { [args.only]: HOSTS[args.only] };
const server = createTestHarness({ root: ROOT, workers });
const { url } = await server.listen();
console.log(JSON.stringify({ event: "ready", url: url.href.replace(/\/$/, ""), hosts }));

const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
