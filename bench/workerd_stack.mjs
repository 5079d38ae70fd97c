// The Worker benchmark's stack on real workerd: wrangler's test harness (Miniflare on the
// workerd that scripts/prepare_workerd.py prepares), as the tests run it, with the
// benchmark's cheap AI stand-in (bench/ai_fixed.mjs) in place of the tests' one. bench/run.py
// starts it and counts the CPU of its workerd processes (this process's children).
//
//   node bench/workerd_stack.mjs [--floors]
//
// The Worker is the local overlay of wrangler.toml (worker/local/overlay.mjs; AI bound to
// the stand-in), with its rate limit raised out of the way (the overlay is written next to
// wrangler.toml under the name writeOverlay gives that variant, and left there, as the
// tests leave theirs). `--floors` adds, in the same
// workerd processes and reached by their own host names (routes): the JS floor (bench/floors/
// js.mjs), the Python floor (bench/floors/fastapi/entry.py, the Worker's runtime and
// python_modules) and the I/O Worker (bench/floors/io.mjs). Secrets (ADMIN_TOKEN,
// URL_SIGNING_KEYS) come from the environment; `$FLUXGATE_WORKERD_ARGS` reaches `workerd
// serve` (the memory-snapshot flags). When it serves, one JSON line goes to stdout:
// {"event": "ready", "url", "hosts": {floor name: host}}. SIGTERM closes it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse } from "smol-toml";
import { createTestHarness } from "wrangler";
import { ROOT, STANDIN, writeOverlay } from "../worker/local/overlay.mjs";

const { values: args } = parseArgs({ options: { floors: { type: "boolean", default: false } } });
const UNLIMITED = 1_000_000;
const project = parse(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
const runtime = { compatibility_date: project.compatibility_date, compatibility_flags: project.compatibility_flags };
const kv = project.kv_namespaces.find((namespace) => namespace.binding === "KV");
const bucket = project.r2_buckets.find((b) => b.binding === "IMAGES");

const HOSTS = { js_floor: "js-floor.bench", py_floor: "py-floor.bench", io: "io.bench" };
const route = (host) => [{ pattern: `${host}/*`, zone_name: "bench" }];
const floors = [
  { config: { name: "bench-js-floor", main: "bench/floors/js.mjs", compatibility_date: project.compatibility_date, routes: route(HOSTS.js_floor) } },
  { config: { name: "bench-py-floor", main: "bench/floors/fastapi/entry.py", ...runtime, routes: route(HOSTS.py_floor) } },
  {
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
];

const overlay = writeOverlay({ ratelimits: { RATE_LIMIT_STANDARD: { limit: UNLIMITED, period: 60 } } });
const secrets = Object.fromEntries(["ADMIN_TOKEN", "URL_SIGNING_KEYS"].map((name) => [name, process.env[name]]));
const vars = { DAILY_BUDGET_USD: String(UNLIMITED), RATE_LIMIT_PER_MINUTE: String(UNLIMITED) };
const server = createTestHarness({
  root: ROOT,
  workers: [{ configPath: overlay, vars, secrets }, { configPath: join(ROOT, "bench", "ai_fixed.toml") }, ...(args.floors ? floors : [])],
});
const { url } = await server.listen();
console.log(JSON.stringify({ event: "ready", url: url.href.replace(/\/$/, ""), hosts: args.floors ? HOSTS : {} }));

const stop = async () => {
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
