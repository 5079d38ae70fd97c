// The Worker and its bindings, as wrangler.toml declares them, in this process: one Pyodide
// "isolate" running src/entry.py, Miniflare's KV and R2, and the doubles of AI, Durable
// Objects (SQLite storage), Queues, Rate Limiting, Analytics Engine, Images and the Cache API.
// host/main.mjs serves it over HTTP; bench/worker.mjs calls it directly to count CPU per
// request.
import { join } from "node:path";
import { Miniflare } from "miniflare";
import initSqlJs from "sql.js";
import { MemoryKV, MemoryR2 } from "./memory_stores.mjs";
import { AnalyticsEngine, CacheDouble, DurableObjectNamespace, KvNamespace, R2Bucket, Ratelimit } from "./bindings.mjs";
import { ImagesBindingImpl } from "./images.mjs";
import { Queue } from "./queues.mjs";
import { ExecutionContext, callFetch, callQueue, importEntry, loadIsolate } from "./worker.mjs";

// `vars`: [vars] and secrets, as the Worker's env sees them. `ai`: the AI binding's double
// (createAI or createRestAI in ai.mjs, or anything with `binding`). `dataDir`: where KV and
// R2 persist (memory without). `consume`: start the queues' consumers (the bench does not,
// so that a submission's CPU is the submission's alone). `stores`: "miniflare" (KV and R2
// simulated by workerd, as the tests use them) or "memory" (memory_stores.mjs: in process,
// nearly free, for counting the Worker's own CPU).
export async function startWorker({ root, config, vars, ai, wheelDir, dataDir = null, consume = true, stores = "miniflare", log = console }) {
  // The Workers Cache API is a global, as in workerd (present before the Worker's import).
  const cache = new CacheDouble();
  globalThis.caches = { default: cache };

  // waitUntil work, adopted at once as workerd does; a failure is logged, never thrown.
  const pending = new Set();
  const adopt = (promise) => {
    const tracked = Promise.resolve(promise)
      .catch((err) => log.error("waitUntil task failed:", err?.message ?? err))
      .finally(() => pending.delete(tracked));
    pending.add(tracked);
  };

  const env = { ...vars };
  const py = await loadIsolate({
    root,
    wheelDir,
    compatibilityDate: config.compatibility_date,
    compatFlags: config.compatibility_flags ?? [],
    env,
    waitUntil: adopt,
    log,
  });

  const kvBindings = (config.kv_namespaces ?? []).map((k) => k.binding);
  const r2Bindings = (config.r2_buckets ?? []).map((b) => b.binding);
  let mf = null;
  if (stores === "memory") {
    for (const name of kvBindings) env[name] = new KvNamespace(new MemoryKV());
    for (const name of r2Bindings) env[name] = new R2Bucket(new MemoryR2());
  } else {
    mf = new Miniflare({
      modules: true,
      script: "export default { fetch() { return new Response(null, { status: 404 }) } }",
      kvNamespaces: kvBindings,
      r2Buckets: r2Bindings,
      ...(dataDir ? { kvPersist: join(dataDir, "kv"), r2Persist: join(dataDir, "r2") } : {}),
    });
    for (const name of kvBindings) env[name] = new KvNamespace(await mf.getKVNamespace(name));
    for (const name of r2Bindings) env[name] = new R2Bucket(await mf.getR2Bucket(name));
  }
  if (config.ai?.binding) env[config.ai.binding] = ai.binding;
  const limiters = {};
  const configuredLimits = {};
  for (const rule of config.ratelimits ?? []) {
    configuredLimits[rule.name] = { limit: rule.simple.limit, period: rule.simple.period };
    limiters[rule.name] = env[rule.name] = new Ratelimit(configuredLimits[rule.name]);
  }
  // Analytics Engine datasets (the binding's double, bindings.mjs): points kept in memory.
  const datasets = {};
  for (const ds of config.analytics_engine_datasets ?? []) {
    datasets[ds.binding] = env[ds.binding] = new AnalyticsEngine(ds.dataset ?? ds.binding);
  }
  // The Images binding ([images]): the double of host/images.mjs, encoding with sharp.
  const images = config.images?.binding ? (env[config.images.binding] = new ImagesBindingImpl()) : null;
  const queues = new Map();
  const consumers = new Map((config.queues?.consumers ?? []).map((c) => [c.queue, c]));
  for (const producer of config.queues?.producers ?? []) {
    const queue = new Queue(producer.queue, consumers.get(producer.queue) ?? null, { log });
    queues.set(producer.queue, queue);
    env[producer.binding] = queue.binding();
  }

  // The import of src/entry.py: on Workers, deploy time (into the memory snapshot).
  const importStarted = process.cpuUsage();
  const entry = importEntry(py);
  const imported = process.cpuUsage(importStarted);
  const SQL = await initSqlJs();
  const namespaces = {};
  const objectCpu = { micros: 0 }; // CPU spent inside Durable Object calls (see bindings.mjs)
  for (const binding of config.durable_objects?.bindings ?? []) {
    const cls = entry.module[binding.class_name];
    if (!cls) throw new Error(`wrangler.toml binds ${binding.name} to ${binding.class_name}, which src/entry.py does not export`);
    namespaces[binding.name] = env[binding.name] = new DurableObjectNamespace(SQL, (state) => cls(state, env), entry.dispatch, objectCpu);
  }

  if (consume) {
    for (const queue of queues.values()) {
      if (queue.consumer) queue.consume((batch) => callQueue(entry, batch, env, new ExecutionContext(adopt)));
    }
  }

  return {
    py,
    env,
    cache,
    pending,
    kvBindings,
    r2Bindings,
    limiters,
    configuredLimits,
    datasets,
    images,
    queues,
    namespaces,
    objectCpu,
    importCpuMs: (imported.user + imported.system) / 1000,
    // One request through the Worker's fetch handler, as workerd calls it.
    fetch: (request) => callFetch(entry, request, env, new ExecutionContext(adopt)),
    async close() {
      for (const queue of queues.values()) queue.close();
      await mf?.dispose();
    },
  };
}
