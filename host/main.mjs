// The Worker host: Fluxgate's Worker, as deployed, served offline on 127.0.0.1.
//
//   npm run worker     (= node host/main.mjs --data-dir .wrangler/host, on the pinned Node)
//   node host/main.mjs [--port 8787] [--host 127.0.0.1] [--data-dir DIR] [--var NAME=VALUE ...]
//                      [--control-port N] [--dev-vars FILE|""] [--quiet]
//
// One Pyodide 314 "isolate" (the Python 3.14 Workers runtime) runs src/entry.py with the
// wheels pinned in worker/requirements.lock. Bindings come from wrangler.toml: KV and R2
// are Miniflare's simulators; AI, Durable Objects (SQLite storage), Queues (producer and
// consumer), Rate Limiting, Analytics Engine, Images (sharp) and the Cache API are doubles
// that keep the services' contracts.
// [vars] come from wrangler.toml, secrets from .dev.vars or the environment (ADMIN_TOKEN,
// URL_SIGNING_KEYS), and --var overrides either. --data-dir keeps KV and R2 across restarts
// (Durable Objects, queues and the cache live in memory). With CLOUDFLARE_ACCOUNT_ID and
// CLOUDFLARE_API_TOKEN set, AI calls go to the Workers AI REST API instead of the double.
//
// --control-port opens a second loopback port for tests (script AI failures, count model
// calls, move the clock, reset state); it is never part of the Worker's own URL space.
import { once } from "node:events";
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { createAI, createRestAI } from "./ai.mjs";
import { Ratelimit } from "./bindings.mjs";
import { startWorker } from "./environment.mjs";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "8787" },
    host: { type: "string", default: "127.0.0.1" },
    "data-dir": { type: "string" },
    var: { type: "string", multiple: true, default: [] },
    wheels: { type: "string", default: join(root, ".cache", "worker-wheels") },
    config: { type: "string", default: join(root, "wrangler.toml") },
    "control-port": { type: "string" },
    "dev-vars": { type: "string", default: join(root, ".dev.vars") },
    quiet: { type: "boolean", default: false },
  },
});

const SECRETS = ["ADMIN_TOKEN", "URL_SIGNING_KEYS"];
const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];
const log = args.quiet ? { log() {}, error: (...a) => console.error(...a) } : console;

// Wall clock the control port can move (tests of expiry); Python's time.time() in Pyodide
// reads Date.now(), so the Worker sees the moved clock too.
let clockOffsetMs = 0;
const realNow = Date.now.bind(Date);
Date.now = () => realNow() + clockOffsetMs;

// [vars] from wrangler.toml, then secrets: .dev.vars (wrangler's local secrets file, NAME=value
// lines), then the environment, then --var. Without URL_SIGNING_KEYS the host makes one (kept
// in the data directory, mode 0600, when there is one) so that a first run just works.
function buildVars(config, dataDir) {
  const vars = { ...(config.vars ?? {}) };
  const devVars = args["dev-vars"];
  if (devVars && existsSync(devVars)) {
    for (const line of readFileSync(devVars, "utf8").split("\n")) {
      const match = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
      if (match) vars[match[1]] = match[2].replace(/^"(.*)"$/, "$1");
    }
  }
  for (const name of SECRETS) if (process.env[name]) vars[name] = process.env[name];
  for (const item of args.var) {
    const at = item.indexOf("=");
    if (at < 1) throw new Error(`--var expects NAME=VALUE, got ${item}`);
    vars[item.slice(0, at)] = item.slice(at + 1);
  }
  // Only when none is set at all: `--var URL_SIGNING_KEYS=` runs the Worker without one.
  if (vars.URL_SIGNING_KEYS === undefined) vars.URL_SIGNING_KEYS = hostSigningKeys(dataDir);
  return vars;
}

function hostSigningKeys(dataDir) {
  const fresh = () => `host=${randomBytes(36).toString("base64url")}`;
  if (!dataDir) return fresh();
  const file = join(dataDir, "url-signing-keys");
  if (!existsSync(file)) writeFileSync(file, fresh(), { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

async function main() {
  const config = parseToml(readFileSync(args.config, "utf8"));
  const flags = config.compatibility_flags ?? [];
  const dataDir = args["data-dir"] ? resolve(args["data-dir"]) : null;
  if (dataDir) mkdirSync(dataDir, { recursive: true, mode: 0o700 });

  const started = Date.now();
  const rest = process.env.CLOUDFLARE_ACCOUNT_ID && process.env.CLOUDFLARE_API_TOKEN;
  const ai = rest ? createRestAI(process.env.CLOUDFLARE_ACCOUNT_ID, process.env.CLOUDFLARE_API_TOKEN) : createAI();
  const worker = await startWorker({
    root,
    config,
    vars: buildVars(config, dataDir),
    ai,
    wheelDir: resolve(args.wheels),
    dataDir,
    log,
  });
  const { py, env, kvBindings, r2Bindings, namespaces, limiters, configuredLimits, datasets, images, queues, cache, pending } = worker;

  const server = createServer(async (req, res) => {
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    try {
      const url = `http://${req.headers.host ?? `${args.host}:${args.port}`}${req.url}`;
      const hasBody = !["GET", "HEAD", ...FORBIDDEN_METHODS].includes(req.method);
      const request = new Request(url, {
        method: FORBIDDEN_METHODS.includes(req.method) ? "GET" : req.method,
        headers: Object.entries(req.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
        body: hasBody ? Readable.toWeb(req) : undefined,
        duplex: hasBody ? "half" : undefined,
        signal: controller.signal,
      });
      // workerd hands the Worker any method it received; Node's Request constructor refuses
      // the fetch spec's forbidden ones, so they are carried as an own property instead.
      if (FORBIDDEN_METHODS.includes(req.method)) Object.defineProperty(request, "method", { value: req.method });
      const response = await worker.fetch(request);
      const headers = {};
      for (const [k, v] of response.headers) headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
      const cookies = response.headers.getSetCookie?.() ?? [];
      if (cookies.length) headers["set-cookie"] = cookies;
      // A body the Worker did not read (it answered from the headers alone) is not drained:
      // the connection is closed after the response, as the edge does.
      if (hasBody && !req.readableEnded) headers.connection = "close";
      res.writeHead(response.status, headers);
      if (response.body && req.method !== "HEAD") {
        // With backpressure, and no further reads once the client has gone.
        for await (const chunk of response.body) {
          if (controller.signal.aborted) break;
          if (!res.write(chunk)) await once(res, "drain", { signal: controller.signal }).catch(() => {});
        }
      }
      if (hasBody && !req.readableEnded) res.on("finish", () => req.destroy());
      res.end();
    } catch (err) {
      log.error("worker threw:", err?.stack ?? err);
      if (res.headersSent) {
        res.destroy(); // a half-sent response must not look complete
      } else {
        // workerd's answer to an uncaught exception in a Worker.
        res.writeHead(500, { "content-type": "text/plain", connection: "close" });
        res.end("Worker threw exception\n");
      }
    }
  });
  // CONNECT never reaches a Worker through Cloudflare's HTTP front end.
  server.on("connect", (_req, socket) => socket.end("HTTP/1.1 405 Method Not Allowed\r\n\r\n"));
  server.keepAliveTimeout = 5000;
  await new Promise((ok) => server.listen(Number(args.port), args.host, ok));
  const address = server.address();

  let control = null;
  if (args["control-port"] !== undefined) {
    control = await startControl({ port: Number(args["control-port"]), host: "127.0.0.1", py, ai, env, kvBindings, r2Bindings, namespaces, limiters, configuredLimits, datasets, images, queues, cache, pending });
  }
  console.log(
    JSON.stringify({
      event: "ready",
      url: `http://${address.address}:${address.port}`,
      control: control ? `http://127.0.0.1:${control.address().port}` : null,
      pyodide: py.version,
      // workerd has ES2026's Uint8Array base64 built-ins; Node 24 only with --js-base-64.
      base64_builtins: typeof Uint8Array.fromBase64 === "function",
      compatibility_flags: flags,
      model: rest ? "workers-ai-rest" : "placeholder",
      seconds: (Date.now() - started) / 1000,
    }),
  );

  log.error(
    `Fluxgate's Worker (Pyodide ${py.version}) on http://${address.address}:${address.port}` +
      `  AI: ${rest ? "Workers AI REST API" : "offline double (placeholder images)"}` +
      `  data: ${dataDir ?? "in memory"}${env.ADMIN_TOKEN ? "" : "  (no ADMIN_TOKEN: admin API off)"}`,
  );

  const stop = async () => {
    server.close();
    control?.close();
    await worker.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

// The test control port: JSON in, JSON out, loopback only.
async function startControl({ port, host, py, ai, env, kvBindings, r2Bindings, namespaces, limiters, configuredLimits, datasets, images, queues, cache, pending }) {
  // The binding a route names ({binding}), or the only one of its kind.
  const binding = (names, body) => {
    const name = body.binding ?? (names.length === 1 ? names[0] : undefined);
    if (!names.includes(name)) throw Object.assign(new Error(`name one of the bindings ${names.join(", ")}`), { status: 400 });
    return name;
  };
  const queue = (body) => {
    const q = queues.get(body.queue ?? (queues.size === 1 ? [...queues.keys()][0] : undefined));
    if (!q) throw Object.assign(new Error(`name one of the queues ${[...queues.keys()].join(", ")}`), { status: 400 });
    return q;
  };
  const paused = new Map(); // queue -> its consumer's handler, while paused
  const routes = {
    "GET /ai": () => ai.stats(),
    "POST /ai/fail": (body) => (ai.failNext(body.message), {}),
    "POST /ai/latency": (body) => (ai.setLatency(body.seconds), {}),
    "POST /ai/realistic": (body) => (ai.setRealistic(body.on), {}),
    // Python's own allocations in the isolate (tracemalloc), from start to stop: what a
    // request made into Python objects, at its peak.
    "POST /python/allocations/start": () => (py.runPython("import tracemalloc; tracemalloc.start()"), {}),
    "POST /python/allocations/stop": () => {
      const peak = py.runPython("import tracemalloc; _peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop(); _peak");
      return { peak_bytes: peak };
    },
    // What a deployer does in wrangler.toml's [[ratelimits]]: a binding per policy rule.
    // The Worker keeps the binding objects it was given (env is fixed for an isolate), so
    // an existing binding is reconfigured in place.
    "POST /ratelimits": (body) => {
      const config = { limit: body.limit, period: body.period };
      if (limiters[body.name]) limiters[body.name].configure(config);
      else limiters[body.name] = env[body.name] = new Ratelimit(config);
      return {};
    },
    "POST /clock/advance": (body) => {
      clockOffsetMs += body.seconds * 1000;
      for (const queue of queues.values()) queue.schedule(); // delayed messages may be due now
      return { offset_seconds: clockOffsetMs / 1000 };
    },
    "GET /queues": () => [...queues.values()].map((q) => q.stats()),
    "GET /kv": () => Object.fromEntries(kvBindings.map((name) => [name, env[name].stats()])),
    "POST /kv/reset-stats": () => (kvBindings.forEach((name) => env[name].resetStats()), {}),
    // Every key of a namespace with its value and metadata (what is stored, as stored).
    "POST /kv/dump": async (body) => env[binding(kvBindings, body)].dump(),
    // An outage of a namespace for key prefixes: {get: [prefix], put: [prefix]} (replaces).
    "POST /kv/fail": (body) => (env[binding(kvBindings, body)].fail(body), {}),
    // An outage of a bucket's writes for key prefixes ("" is every key): {put: [prefix]}.
    "POST /r2/fail": (body) => (env[binding(r2Bindings, body)].fail(body), {}),
    "POST /r2/head": async (body) => {
      const object = await env[binding(r2Bindings, body)].head(body.key);
      return object ? { key: object.key, size: object.size } : null;
    },
    "POST /r2/delete": async (body) => (await env[binding(r2Bindings, body)].delete(body.key), {}),
    // Every object key under a prefix (R2's list, followed to its end).
    "POST /r2/list": async (body) => {
      const bucket = env[binding(r2Bindings, body)];
      const keys = [];
      let cursor;
      do {
        const page = await bucket.list({ prefix: body.prefix ?? "", cursor });
        keys.push(...page.objects.map((o) => o.key));
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return keys;
    },
    // Guard (Llama Guard through the AI binding): script unsafe words, failures, the text form.
    "GET /guard": () => ai.guard.stats(),
    "POST /guard": (body) => (ai.guard.script(body), {}),
    // Scout (Llama 4 Scout as the output classifier): script verdicts, failures, the answer's
    // form; read the calls and the images it saw (format, size, sha256).
    "GET /scout": () => ai.scout.stats(),
    "POST /scout": (body) => (ai.scout.script(body), {}),
    // A message sent to a queue as a producer would (a redelivery, say).
    "POST /queues/send": (body) => (queue(body).enqueue([{ body: body.body, contentType: "json", delaySeconds: 0 }]), {}),
    // Stop and restart a queue's consumer: messages wait, as behind a paused consumer.
    "POST /queues/pause": (body) => {
      const q = queue(body);
      if (q.handler) paused.set(q, q.handler);
      q.close();
      return {};
    },
    "POST /queues/resume": (body) => {
      const q = queue(body);
      if (paused.has(q)) q.consume(paused.get(q));
      paused.delete(q);
      return {};
    },
    // Until every queue has delivered what it holds (and its waitUntil work is done).
    "POST /queues/drain": async () => {
      const busy = () => [...queues.values()].some((q) => q.handler && (q.pending.length || q.running || q.timer));
      while (busy() || pending.size) {
        await new Promise((ok) => setTimeout(ok, 10));
        await Promise.all([...pending]);
      }
      return {};
    },
    // Analytics Engine: the points each dataset binding was given, in order.
    "GET /analytics": () => Object.fromEntries(Object.entries(datasets).map(([name, d]) => [name, d.points()])),
    // One writeDataPoint({point}) as the Worker would call it: what it returned or threw.
    "POST /analytics/write": (body) => {
      try {
        return { returned: datasets[binding(Object.keys(datasets), body)].writeDataPoint(body.point) ?? null };
      } catch (err) {
        if (err?.status) throw err;
        return { thrown: { name: err?.constructor?.name ?? "Error", message: String(err?.message ?? err) } };
      }
    },
    // Every write throws {message} (null: writes work again), as a failing binding would.
    "POST /analytics/fail": (body) => (datasets[binding(Object.keys(datasets), body)].fail(body.message ?? null), {}),
    // The Images binding (host/images.mjs): output()/info() calls and what each asked;
    // {code, message, count}: the next calls answer that error (ImagesError), as an outage.
    "GET /images": () => images?.stats() ?? null,
    "POST /images/fail": (body) => {
      if (!images) throw Object.assign(new Error("wrangler.toml declares no [images] binding"), { status: 400 });
      images.fail(body);
      return {};
    },
    // A job's record, as the JOBS Durable Object holds it.
    "POST /jobs/get": async (body) => {
      const raw = await namespaces.JOBS.getByName(body.job_id).get(body.job_id);
      return raw == null ? null : JSON.parse(String(raw));
    },
    "POST /settle": async () => {
      while (pending.size) await Promise.all([...pending]);
      return {};
    },
    "POST /reset": async () => {
      // Nothing queued survives, and no batch still running can write into the next test.
      for (const queue of queues.values()) queue.clear();
      for (const queue of queues.values()) await queue.quiesce();
      while (pending.size) await Promise.all([...pending]);
      for (const name of kvBindings) await env[name].clear();
      for (const name of r2Bindings) {
        const bucket = env[name];
        let cursor;
        do {
          const page = await bucket.list({ cursor });
          if (page.objects.length) await bucket.delete(page.objects.map((o) => o.key));
          cursor = page.truncated ? page.cursor : undefined;
        } while (cursor);
      }
      for (const ns of Object.values(namespaces)) ns.reset();
      for (const [name, limiter] of Object.entries(limiters)) {
        limiter.configure(configuredLimits[name] ?? limiter.config);
      }
      cache.entries.clear();
      for (const dataset of Object.values(datasets)) dataset.clear();
      images?.reset();
      for (const name of kvBindings) env[name].resetStats();
      for (const name of [...kvBindings, ...r2Bindings]) env[name].fail({});
      for (const [q, handler] of paused) q.consume(handler);
      paused.clear();
      ai.reset();
      clockOffsetMs = 0;
      return {};
    },
  };
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const route = routes[`${req.method} ${req.url}`];
    try {
      if (!route) throw Object.assign(new Error("no such control route"), { status: 404 });
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
      const result = await route(body);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result));
    } catch (err) {
      res.writeHead(err.status ?? 500, { "content-type": "application/json" }).end(JSON.stringify({ error: String(err?.message ?? err) }));
    }
  });
  await new Promise((ok) => server.listen(port, host, ok));
  return server;
}

main().catch((err) => {
  console.error("worker host failed to start:", err?.stack ?? err);
  process.exit(2);
});
