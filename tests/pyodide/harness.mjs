// Runs Fluxgate's Workers adapters in real Pyodide (the release workerd uses), inside Node,
// against Miniflare's KV and R2 simulators and a JavaScript AI binding double.
//
//   node tests/pyodide/harness.mjs --wheels .cache/pyodide-wheels [--only case_name]
//
// Prints one JSON line per case ({"case", "ok", "seconds", "detail"}), then
// "N passed, N failed". Exits 1 if any case failed, 2 if the harness itself could not start.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadPyodide } from "pyodide";
import { Miniflare } from "miniflare";
import { createAI } from "./ai_double.mjs";
import {
  CacheDouble, createBatch, createContext, createDurableObjectNamespace, createQueue, createRateLimiter, createReceiver,
} from "./bindings.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const { values: args } = parseArgs({
  options: { wheels: { type: "string" }, only: { type: "string", multiple: true } },
});

const SIGNING_KEYS = "edge1=" + "e".repeat(40) + ",edge0=" + "z".repeat(40);

async function main() {
  const started = Date.now();
  const output = [];
  const py = await loadPyodide({
    stdout: (line) => output.push(line),
    stderr: (line) => output.push(line),
  });

  // The real Workers SDK, from its wheel.
  const wheelDir = resolve(args.wheels ?? join(root, ".cache", "pyodide-wheels"));
  const sitePackages = py.runPython("import site; site.getsitepackages()[0]");
  for (const name of readdirSync(wheelDir).filter((f) => f.endsWith(".whl"))) {
    const wheel = new Uint8Array(readFileSync(join(wheelDir, name)));
    py.unpackArchive(wheel, "wheel", { extractDir: sitePackages });
  }
  // Project code, the runtime-module shims and the cases, mounted read-only from disk.
  for (const [target, source] of [
    ["/fluxgate/src", join(root, "src")],
    ["/fluxgate/shims", join(here, "shims")],
    ["/fluxgate/cases", here],
  ]) {
    py.FS.mkdirTree(target);
    py.mountNodeFS(target, source);
  }

  py.runPython('import sys; sys.path[:0] = ["/fluxgate/src", "/fluxgate/shims", "/fluxgate/cases"]');

  const mf = new Miniflare({
    modules: true,
    script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
    kvNamespaces: ["KV"],
    r2Buckets: ["IMAGES"],
  });
  const ai = createAI();
  const env = {
    KV: await mf.getKVNamespace("KV"),
    IMAGES: await mf.getR2Bucket("IMAGES"),
    AI: ai.binding,
    RATE_LIMIT_STANDARD: createRateLimiter({ limit: 3, period: 60 }),
    URL_SIGNING_KEYS: SIGNING_KEYS,
    CACHE_TTL_SECONDS: "3600",
  };
  const { BudgetLedgerObject } = py.pyimport("fluxgate.edge.ledger");
  env.BUDGETS = await createDurableObjectNamespace((ctx, e) => BudgetLedgerObject(ctx, e), env);
  const { JobObject } = py.pyimport("fluxgate.edge.jobs");
  env.JOBS = await createDurableObjectNamespace((ctx, e) => JobObject(ctx, e), env);
  env.JOB_QUEUE = createQueue();
  const receiver = await createReceiver();
  const { CoalescerObject } = py.pyimport("fluxgate.edge.coalesce");
  env.COALESCER = await createDurableObjectNamespace((ctx, e) => CoalescerObject(ctx, e), env);
  const ctx = createContext();
  globalThis.caches = { default: new CacheDouble() };
  py.registerJsModule("harness", { env, ctx, ai, signingKeys: SIGNING_KEYS, receiver, createBatch });

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
