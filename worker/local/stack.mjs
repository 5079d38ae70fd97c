// The Worker on real workerd for the tests and the benchmark: wrangler's test harness
// (Miniflare on the workerd binary prepared by scripts/prepare_workerd.py) running the
// project's Worker from the local overlay of wrangler.toml, and the AI stand-in beside it.
//
//   node worker/local/stack.mjs [--var NAME=VALUE]... [--without TABLE]...
//                               [--ratelimit BINDING=LIMIT/PERIOD]... [--control-port N]
//
// Secrets (ADMIN_TOKEN, URL_SIGNING_KEYS, C2PA_SIGNING_KEY, C2PA_CERTIFICATE_CHAIN) come from
// the environment; `--var NAME=` leaves one
// unset. When the Worker serves, one JSON line goes to stdout: {"event": "ready", "url",
// "control"}. The control port (loopback, JSON in and out) is how a test reaches what is
// beside the Worker, never the Worker's own URL space: the stand-in's script and counters,
// the KV namespace and R2 bucket as stored, the job queue's producer, a job's record in its
// Durable Object, and the runtime's console. What workerd does not let anyone do from
// outside (move its clock, fail a binding, pause a queue's consumer) is not offered: those
// routes answer 501, and the tests that need them run on the local runtime. (What a request
// did with its bindings is in workerd's own --async-trace, which a test can ask for.)
import { createServer } from "node:http";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse } from "smol-toml";
import { createTestHarness } from "wrangler";
import { ROOT, STANDIN, STANDIN_CONFIG, parseRatelimits, writeOverlay } from "./overlay.mjs";

const { values: args } = parseArgs({
  options: {
    var: { type: "string", multiple: true, default: [] },
    without: { type: "string", multiple: true, default: [] },
    ratelimit: { type: "string", multiple: true, default: [] },
    "control-port": { type: "string" },
  },
});

const vars = {};
const secrets = {};
const unset = new Set();
const SECRETS = ["ADMIN_TOKEN", "URL_SIGNING_KEYS", "C2PA_SIGNING_KEY", "C2PA_CERTIFICATE_CHAIN"];
for (const name of SECRETS) if (process.env[name]) secrets[name] = process.env[name];
for (const pair of args.var) {
  const at = pair.indexOf("=");
  if (at < 1) throw new Error(`--var ${pair}: expected NAME=VALUE`);
  const [name, value] = [pair.slice(0, at), pair.slice(at + 1)];
  if (name in secrets || SECRETS.includes(name)) {
    if (value === "") (delete secrets[name], unset.add(name));
    else secrets[name] = value;
  } else vars[name] = value;
}

// wrangler's harness binds every key of the project's .dev.vars (or, without one, .env and
// .env.local) under the secrets given here: a developer's settings or tokens would reach
// the tests' Worker and a secret meant to be unset would come from there.
for (const file of [".dev.vars", ".env", ".env.local"]) {
  if (existsSync(join(ROOT, file))) throw new Error(`${file} would leak into the tests' Worker: move it aside to run the tests`);
}
const config = writeOverlay({ without: args.without, ratelimits: parseRatelimits(args.ratelimit) });

const consumedQueue = parse(readFileSync(config, "utf8")).queues.consumers[0].queue;
const server = createTestHarness({
  root: ROOT,
  workers: [
    { configPath: config, vars, secrets },
    { configPath: STANDIN_CONFIG },
  ],
});
const { url } = await server.listen();
const worker = server.getWorker();
const env = await worker.getEnv();
const standin = server.getWorker(STANDIN);

// Whether the Worker's isolate ever died, over the stack's life (the console is cleared at
// each reset; these counts are not). The Worker writes ISOLATE_STARTED on the first event
// of each isolate (src/fluxgate/edge/front/worker.py): a second one means the first died. A
// fatal error leaves its own lines on the console as well.
const ISOLATE_STARTED = "fluxgate: isolate started";
const FATAL = [/Pyodide has suffered a fatal error/, /Maximum call stack size exceeded/, /Out of memory/i];
const isolates = { started: 0, fatal: [] };
let tallied = 0;
function tally() {
  const logs = server.getLogs();
  for (const { message } of logs.slice(tallied)) {
    if (message === ISOLATE_STARTED) isolates.started += 1;
    else if (FATAL.some((pattern) => pattern.test(message))) isolates.fatal.push(String(message).slice(0, 500));
  }
  tallied = logs.length;
}

const unsupported = (what) => () => {
  throw Object.assign(new Error(`workerd offers no way to ${what} from outside`), { status: 501 });
};
const toStandin = (method, path) => async (body) => {
  const response = await standin.fetch(`http://standin${path}`, {
    method,
    body: method === "GET" ? undefined : JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  const payload = await response.json();
  if (!response.ok) throw Object.assign(new Error(payload.error ?? response.statusText), { status: response.status });
  return payload;
};

async function listAll(bucket, prefix = "") {
  const keys = [];
  let cursor;
  do {
    const page = await bucket.list({ prefix, cursor });
    keys.push(...page.objects.map((o) => o.key));
    cursor = page.truncated ? page.cursor : undefined;
  } while (cursor);
  return keys;
}

async function kvKeys(namespace) {
  const keys = [];
  let cursor;
  do {
    const page = await namespace.list({ cursor });
    keys.push(...page.keys.map((k) => k.name));
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return keys;
}

const routes = {
  "GET /ai": toStandin("GET", "/ai"),
  "POST /ai/fail": toStandin("POST", "/ai/fail"),
  "POST /ai/latency": toStandin("POST", "/ai/latency"),
  "POST /ai/realistic": toStandin("POST", "/ai/realistic"),
  "GET /guard": toStandin("GET", "/guard"),
  "POST /guard": toStandin("POST", "/guard"),
  "GET /scout": toStandin("GET", "/scout"),
  "POST /scout": toStandin("POST", "/scout"),
  // The runtime's console since the last reset (what Workers Logs would collect).
  "GET /logs": () => server.getLogs().map((entry) => ({ level: entry.level, message: entry.message })),
  // Isolates started and fatal console lines since the stack started: {started, fatal}.
  "GET /isolates": () => (tally(), isolates),
  // Every key of the namespace with its value and metadata, as stored.
  "POST /kv/dump": async () =>
    Promise.all(
      (await kvKeys(env.KV)).map(async (key) => {
        const { value, metadata } = await env.KV.getWithMetadata(key);
        return { key, value, metadata: metadata == null ? null : JSON.stringify(metadata) };
      }),
    ),
  "POST /r2/head": async (body) => {
    const object = await env.IMAGES.head(body.key);
    return object ? { key: object.key, size: object.size } : null;
  },
  "POST /r2/delete": async (body) => (await env.IMAGES.delete(body.key), {}),
  "POST /r2/list": async (body) => listAll(env.IMAGES, body.prefix ?? ""),
  // A message as a producer sends one (a redelivery, say).
  "POST /queues/send": async (body) => (await env.JOB_QUEUE.send(body.body, { contentType: "json" }), {}),
  // One message handed to the Worker's queue handler as the consumer delivers it, answered
  // when the handler is done: a redelivery whose effects (or their absence) can be read
  // right after. Where workerd's queue sends its own deliveries is not reachable.
  "POST /queues/deliver": async (body) => {
    const handler = await worker.getExport();
    const message = { id: crypto.randomUUID(), timestamp: new Date(), body: body.body, attempts: body.attempts ?? 1 };
    const result = await handler.queue(consumedQueue, [message]);
    return { id: message.id, outcome: result.outcome, ackAll: result.ackAll, explicitAcks: result.explicitAcks, retryMessages: result.retryMessages };
  },
  // A job's record, read through the JOBS Durable Object's own method.
  "POST /jobs/get": async (body) => {
    const raw = await env.JOBS.getByName(body.job_id).get(body.job_id);
    return raw == null ? null : JSON.parse(String(raw));
  },
  "POST /reset": async () => {
    // The last test's waitUntil work (cache writes, the catalog) may run on after its last
    // answer: wait until the console has been quiet for 100 ms (3 s at most) before wiping,
    // so that little of it lands in the next test's stores or console. workerd offers no
    // handle on that work, and a job still in the queue is not seen this way at all.
    for (let waited = 0, seen = -1; waited < 3000 && server.getLogs().length !== seen; waited += 100) {
      seen = server.getLogs().length;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    for (const key of await kvKeys(env.KV)) await env.KV.delete(key);
    const objects = await listAll(env.IMAGES);
    for (let at = 0; at < objects.length; at += 1000) await env.IMAGES.delete(objects.slice(at, at + 1000));
    await toStandin("POST", "/reset")({});
    tally();
    server.clearLogs();
    tallied = 0;
    return {};
  },
  "POST /clock/advance": unsupported("move the Worker's clock"),
  "POST /kv/fail": unsupported("make a KV namespace fail"),
  "POST /r2/fail": unsupported("make an R2 bucket fail"),
  "POST /queues/pause": unsupported("pause a queue's consumer"),
  "GET /analytics": unsupported("read Analytics Engine data points (Miniflare's dataset keeps none)"),
};

let control = null;
if (args["control-port"] !== undefined) {
  control = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const route = routes[`${req.method} ${req.url}`];
    try {
      if (!route) throw Object.assign(new Error("no such control route"), { status: 404 });
      const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
      const result = await route(body);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(result ?? null));
    } catch (err) {
      res.writeHead(err.status ?? 500, { "content-type": "application/json" }).end(JSON.stringify({ error: String(err?.message ?? err) }));
    }
  });
  await new Promise((ok) => control.listen(Number(args["control-port"]), "127.0.0.1", ok));
}

console.log(JSON.stringify({
  event: "ready",
  url: url.href.replace(/\/$/, ""),
  control: control ? `http://127.0.0.1:${control.address().port}` : null,
  unset: [...unset],
}));

const stop = async () => {
  control?.close();
  await server.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
