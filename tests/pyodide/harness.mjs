// The Pyodide unit harness: runs Fluxgate's Workers adapters one case at a time in the
// Python Workers runtime's interpreter (the Pyodide of the release the Worker deploys to, the
// wheels of worker/requirements.lock), loaded by `loadIsolate` (./isolate.mjs) inside Node,
// against Miniflare's KV and R2 simulators and binding doubles: the AI models of
// worker/local/ai_models.mjs (those the local stand-in serves on workerd), ./bindings.mjs and
// ./queues.mjs. A unit harness, not the Worker: the Worker itself runs on workerd
// (worker/local/stack.mjs).
//
//   node tests/pyodide/harness.mjs [--wheels .cache/worker-wheels] [--config wrangler.toml]
//                                  [--only case_name ...]
//
// Prints one JSON line per case ({"case", "ok", "seconds", "detail"}), then
// "N passed, N failed". Exits 1 if any case failed, 2 if the harness itself could not start.
import { readFileSync, realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Miniflare } from "miniflare";
import { parse as parseToml } from "smol-toml";
import { createAI } from "../../worker/local/ai_models.mjs";
import {
  Ai,
  AnalyticsEngine,
  CacheDouble,
  KvNamespace,
  R2Bucket,
  Ratelimit,
  createBatch,
  createDurableObjectNamespace,
  createReceiver,
} from "./bindings.mjs";
import { ExecutionContext, loadIsolate } from "./isolate.mjs";
import { Queue } from "./queues.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const { values: args } = parseArgs({
  options: {
    wheels: { type: "string", default: join(root, ".cache", "worker-wheels") },
    config: { type: "string", default: join(root, "wrangler.toml") },
    only: { type: "string", multiple: true },
  },
});

const SIGNING_KEYS = "edge1=" + "e".repeat(40) + ",edge0=" + "z".repeat(40);

async function main() {
  const started = Date.now();
  const output = [];
  const log = { log: (line) => output.push(line), error: (line) => output.push(line) };

  // The Cache API is a global, as in workerd (present before any Python runs).
  globalThis.caches = { default: new CacheDouble() };

  // waitUntil work (ctx.waitUntil and cloudflare:workers' waitUntil), kept so a case can
  // wait for it (`harness.settle()`); a failure is logged, as workerd does.
  const pending = [];
  const adopt = (promise) => {
    pending.push(Promise.resolve(promise).catch((err) => output.push(`waitUntil task failed: ${err?.message ?? err}`)));
  };
  const settle = async () => {
    while (pending.length) await Promise.all(pending.splice(0));
  };

  const config = parseToml(readFileSync(args.config, "utf8"));
  const env = {};
  const py = await loadIsolate({
    root,
    wheelDir: resolve(args.wheels),
    compatibilityDate: config.compatibility_date,
    compatFlags: config.compatibility_flags ?? [],
    env,
    waitUntil: adopt,
    log,
  });
  // The cases, next to the Worker's module root.
  py.FS.mkdirTree("/session/cases");
  py.mountNodeFS("/session/cases", realpathSync(here));
  // The module walk (tests/support/module_walk.py), the same code bench/walk.py runs.
  py.FS.mkdirTree("/session/support");
  py.mountNodeFS("/session/support", realpathSync(resolve(here, "..", "support")));
  py.runPython('import sys; sys.path += ["/session/cases", "/session/support"]');

  const mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
    kvNamespaces: ["KV"],
    r2Buckets: ["IMAGES"],
  });
  const ai = createAI();
  // The Queue (a producer); `sent` records the options of each send.
  const queue = new Queue("fluxgate-jobs");
  const producer = queue.binding();
  const jobQueue = {
    sent: [],
    get pending() {
      return queue.pending;
    },
  };
  const send = producer.send.bind(producer);
  producer.send = (body, options) => {
    jobQueue.sent.push({ contentType: options?.contentType, delaySeconds: options?.delaySeconds });
    return send(body, options);
  };
  Object.assign(env, {
    // workerd's class names, so that the Workers SDK wraps them as it does in production.
    KV: new KvNamespace(await mf.getKVNamespace("KV")),
    IMAGES: new R2Bucket(await mf.getR2Bucket("IMAGES")),
    AI: new Ai(ai),
    RATE_LIMIT_STANDARD: new Ratelimit({ limit: 3, period: 60 }),
    USAGE_EVENTS: new AnalyticsEngine("fluxgate_usage"),
    URL_SIGNING_KEYS: SIGNING_KEYS,
    ADMIN_TOKEN: "admin-token-for-the-unit-harness-0123",
    CACHE_TTL_SECONDS: "3600",
    JOB_QUEUE: producer,
  });
  // Durable Objects are called as workerd calls them (shims/_workerd_dispatch.py: the SDK's
  // RPC conversions, methods called strictly).
  const { call: dispatch } = py.pyimport("_workerd_dispatch");
  for (const [name, module, cls] of [
    ["BUDGETS", "fluxgate.edge.bindings.ledger_object", "BudgetLedgerObject"],
    ["JOBS", "fluxgate.edge.bindings.job_objects", "JobObject"],
    ["COALESCER", "fluxgate.edge.bindings.coalescer_object", "CoalescerObject"],
    ["CATALOG", "fluxgate.edge.bindings.catalog_object", "CatalogObject"],
    ["IDEMPOTENCY", "fluxgate.edge.bindings.answers_object", "IdempotencyObject"],
  ]) {
    const construct = py.pyimport(module)[cls];
    env[name] = await createDurableObjectNamespace((state, e) => construct(state, e), env, dispatch);
  }
  const receiver = await createReceiver();
  const ctx = new ExecutionContext(adopt);
  py.registerJsModule("harness", { env, ctx, ai, settle, jobQueue, receiver, createBatch });

  let results;
  try {
    results = JSON.parse(
      await py.runPythonAsync(`
import cases
await cases.run(${JSON.stringify(args.only ?? [])})
`),
    );
  } finally {
    await mf.dispose();
    receiver.close();
  }
  for (const result of results) console.log(JSON.stringify(result));
  const failed = results.filter((r) => !r.ok).length;
  if (failed && output.length) console.error(output.join("\n"));
  console.log(`pyodide ${py.version}, ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error("harness failed to start:", err?.stack ?? err);
  process.exitCode = 2;
});
