// The Pyodide harness's binding doubles (tests/pyodide/harness.mjs), each named like
// workerd's class so that the Workers SDK wraps it as it does in production: Miniflare's KV
// and R2 under workerd's class names, and doubles of what Miniflare cannot give a Python
// harness in process: the AI binding's wrapper, Rate Limiting, Durable Object namespaces
// whose objects have SQLite storage, the Cache API, Analytics Engine, a Queue consumer's
// batch, and a real HTTP server that records webhooks.
import { createServer } from "node:http";
import initSqlJs from "sql.js";
import { checkRunOptions } from "../../worker/local/ai_models.mjs";

// The Rate Limiting binding (class named like workerd's): limit({key}) -> {success}. Fixed
// windows of `period` seconds, counted per key, as one Cloudflare location would.
export class Ratelimit {
  #counts = new Map();
  constructor({ limit, period }) {
    // wrangler refuses other values: a simple rule's period is 10 or 60 seconds.
    if (![10, 60].includes(period)) throw new RangeError(`ratelimit period must be 10 or 60, got ${period}`);
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`ratelimit limit must be a positive integer, got ${limit}`);
    this.config = { limit, period };
  }
  async limit(options) {
    if (!options || typeof options.key !== "string") {
      throw new TypeError("limit() expects {key: string}");
    }
    const { limit, period } = this.config;
    const window = Math.floor(Date.now() / 1000 / period);
    const slot = `${options.key}\u0000${window}`;
    const used = this.#counts.get(slot) ?? 0;
    if (used >= limit) return { success: false };
    this.#counts.set(slot, used + 1);
    return { success: true };
  }
}

// SqlStorage over real SQLite (sql.js): exec(query, ...bindings) runs synchronously and
// returns a cursor with raw() (arrays), toArray() (objects) and one().
class SqlStorageCursor {
  constructor(columns, rows) {
    this.columnNames = columns;
    this._rows = rows;
  }
  raw() {
    return this._rows[Symbol.iterator]();
  }
  toArray() {
    return this._rows.map((row) => Object.fromEntries(this.columnNames.map((c, i) => [c, row[i]])));
  }
  one() {
    if (this._rows.length !== 1) throw new Error(`Expected exactly one result from SQL query, got ${this._rows.length}`);
    return this.toArray()[0];
  }
}

class SqlStorage {
  constructor(db) {
    this._db = db;
  }
  exec(query, ...bindings) {
    for (const value of bindings) {
      if (value !== null && !["number", "string", "bigint"].includes(typeof value) && !(value instanceof ArrayBuffer)) {
        throw new TypeError(`Unsupported binding type: ${value?.constructor?.name ?? typeof value}`);
      }
    }
    // Every statement of the query runs, in order (sql.js prepares each after the previous
    // ran); the bindings go to the statement with parameters; the cursor is the last one's.
    let cursor = new SqlStorageCursor([], []);
    let bound = false;
    for (const statement of this._db.iterateStatements(query)) {
      try {
        if (!bound && statement.getSQL().includes("?")) {
          statement.bind(bindings);
          bound = true;
        }
        const rows = [];
        while (statement.step()) rows.push(statement.get());
        cursor = new SqlStorageCursor(statement.getColumnNames(), rows);
      } finally {
        statement.free();
      }
    }
    if (!bound && bindings.length) throw new RangeError("Wrong number of parameter bindings for SQL query.");
    return cursor;
  }
}

// Named like workerd's classes, so that the Workers SDK wraps them as it does in production.
class DurableObjectStorage {
  constructor(sql) {
    this.sql = sql;
  }
}

class DurableObjectId {
  constructor(name) {
    this.name = name;
  }
  toString() {
    return this.name;
  }
  equals(other) {
    return String(other) === this.name;
  }
}

class DurableObjectState {
  constructor(id, storage) {
    this.id = id;
    this.storage = storage;
  }
  waitUntil() {}
  async blockConcurrencyWhile(callback) {
    return await callback();
  }
}

// A Durable Object namespace: idFromName/get/getByName; one object instance (and one SQLite
// database) per name. `construct(state)` makes the object; `call(instance, method, ...args)`
// runs one RPC method the way workerd does (the harness passes shims/_workerd_dispatch.py,
// which converts as workerd's does and calls strictly). Arguments and results are
// structured-cloned, as they are when they cross between isolates.
class DurableObjectNamespace {
  #objects = new Map();
  #construct;
  #call;
  #SQL;
  constructor(SQL, construct, call) {
    this.#SQL = SQL;
    this.#construct = construct;
    this.#call = call;
  }
  idFromName(name) {
    return new DurableObjectId(String(name));
  }
  getByName(name) {
    return this.get(this.idFromName(name));
  }
  get(id) {
    const name = String(id);
    if (!this.#objects.has(name)) {
      const state = new DurableObjectState(id, new DurableObjectStorage(new SqlStorage(new this.#SQL.Database())));
      this.#objects.set(name, { state, instance: this.#construct(state) });
    }
    const { instance } = this.#objects.get(name);
    const call = this.#call;
    return new Proxy(
      {},
      {
        get(_, method) {
          if (method === "then" || typeof method !== "string") return undefined;
          return async (...args) => structuredClone(await call(instance, method, ...structuredClone(args)));
        },
      },
    );
  }
}

export async function createDurableObjectNamespace(construct, env, call) {
  const SQL = await initSqlJs();
  return new DurableObjectNamespace(SQL, (state) => construct(state, env), call);
}

// A response as workerd hands out from the Cache API (and fetch()): its headers are
// immutable, and changing them throws "TypeError: Can't modify immutable headers."; a
// Worker must copy it (`new Response(response.body, response)`) to add one.
function withImmutableHeaders(response) {
  const headers = response.headers;
  const refuse = () => {
    throw new TypeError("Can't modify immutable headers.");
  };
  const guarded = new Proxy(headers, {
    get(target, name) {
      if (name === "set" || name === "append" || name === "delete") return refuse;
      const value = Reflect.get(target, name, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  Object.defineProperty(response, "headers", { value: guarded });
  return response;
}

// The Workers Cache API (caches.default), as far as Fluxgate uses it: match/put by URL,
// with the platform's refusals (no partial responses, nothing marked private/no-store).
export class CacheDouble {
  constructor() {
    this.entries = new Map();
  }
  static keyOf(request) {
    return typeof request === "string" ? request : request.url;
  }
  // The Cache API has no effect on *.workers.dev: nothing is stored or found there.
  static onWorkersDev(request) {
    const host = new URL(CacheDouble.keyOf(request)).hostname;
    return host === "workers.dev" || host.endsWith(".workers.dev");
  }
  async match(request) {
    if (CacheDouble.onWorkersDev(request)) return undefined;
    const entry = this.entries.get(CacheDouble.keyOf(request));
    if (!entry) return undefined;
    return withImmutableHeaders(new Response(entry.body.slice(), { status: entry.status, headers: entry.headers }));
  }
  async put(request, response) {
    if (response.status === 206) throw new TypeError("Cannot cache response to a range request");
    const cacheControl = (response.headers.get("cache-control") || "").toLowerCase();
    const body = new Uint8Array(await response.arrayBuffer());
    if (/private|no-store/.test(cacheControl) || CacheDouble.onWorkersDev(request)) return;
    this.entries.set(CacheDouble.keyOf(request), { body, status: response.status, headers: [...response.headers] });
  }
  async delete(request) {
    return this.entries.delete(CacheDouble.keyOf(request));
  }
}

// A MessageBatch as the consumer handler receives it; records what was acked or retried.
// Class instances named like workerd's, not plain objects: the Workers SDK's RPC conversion
// would turn plain objects into dicts.
export function createBatch(bodies) {
  const outcome = [];
  class QueueMessage {
    constructor(id, body) {
      Object.assign(this, { id, body, attempts: 1, timestamp: new Date() });
    }
    ack() {
      outcome.push({ id: this.id, ack: true });
    }
    retry(options = {}) {
      outcome.push({ id: this.id, retry: options?.delaySeconds ?? 0 });
    }
  }
  class QueueController {
    constructor() {
      this.outcome = outcome;
      this.queue = "fluxgate-jobs";
      this.messages = bodies.map((body, i) => new QueueMessage(`m${i}`, body));
    }
  }
  return new QueueController();
}

// A real HTTP server on 127.0.0.1 that records POSTs (the webhook receiver): the first
// answers 503, the rest 204.
export async function createReceiver() {
  const received = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(received.length === 1 ? 503 : 204).end();
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}/hook`, received, close: () => server.close() };
}

// A Workers Analytics Engine dataset binding (named like workerd's class, AnalyticsEngine;
// the TypeScript types call it AnalyticsEngineDataset). writeDataPoint(event) is synchronous
// and returns undefined; it converts and checks the point as workerd does
// (src/workerd/api/analytics-engine{,-impl}.h, checked against workerd 2026-04-26):
// - the event is an object (or undefined/null: an empty point); `indexes`, `blobs` and
//   `doubles`, when present, are arrays (TypeError otherwise, at the call);
// - blobs and indexes are strings or bytes (ArrayBuffer/views); null/undefined items stay
//   empty; anything else becomes its string (a Symbol throws); doubles become numbers
//   (a BigInt throws);
// - at most 20 blobs of 16,000 bytes in all (UTF-8), 20 doubles, 1 index of 96 bytes, with
//   workerd's TypeError messages. workerd raises these while it serialises the point (the
//   standalone workerd reports them as an uncaught exception and drops the point); the
//   double throws them at the call, the stricter of the two, so a test sees the refusal.
// Not modelled: the per-invocation cap (250 points) and the service's sampling.
// The double's own: points() (what was written, with the dataset and the time).
const AE_MAX_MEMBERS = 20;
const AE_MAX_BLOB_BYTES = 16000;
const AE_MAX_INDEXES = 1;
const AE_MAX_INDEX_BYTES = 96;

function aeBytes(value) {
  if (value === null || value === undefined) return null;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new TextEncoder().encode(`${value}`); // a Symbol throws, as in workerd
}

export class AnalyticsEngine {
  #points = [];
  constructor(dataset) {
    this.dataset = dataset;
  }
  writeDataPoint(event) {
    const prefix = "writeDataPoint(): ";
    if (event !== undefined && event !== null && typeof event !== "object") {
      throw new TypeError("Failed to execute 'writeDataPoint' on 'AnalyticsEngine': parameter 1 is not of type 'AnalyticsEngineEvent'.");
    }
    const fields = {};
    for (const name of ["indexes", "blobs", "doubles"]) {
      const value = event?.[name];
      if (value === undefined) continue;
      if (!Array.isArray(value)) {
        throw new TypeError(`Incorrect type for the '${name}' field on 'AnalyticsEngineEvent': the provided value is not of type 'Array'.`);
      }
      fields[name] = name === "doubles" ? [...value].map((v) => +v) : [...value].map(aeBytes);
    }
    const { indexes = [], blobs = [], doubles = [] } = fields;
    if (indexes.length > AE_MAX_INDEXES) throw new TypeError(`${prefix}Maximum of ${AE_MAX_INDEXES} indexes supported.`);
    if (indexes[0] && indexes[0].length > AE_MAX_INDEX_BYTES) {
      throw new TypeError(`${prefix}Size of indexes[0] exceeds ${AE_MAX_INDEX_BYTES} bytes).`);
    }
    if (blobs.length > AE_MAX_MEMBERS) throw new TypeError(`${prefix}Maximum of ${AE_MAX_MEMBERS} blobs supported.`);
    let size = 0;
    for (const blob of blobs) {
      size += blob ? blob.length : 0;
      if (size > AE_MAX_BLOB_BYTES) throw new TypeError(`${prefix}Cumulative size of blobs exceeds ${AE_MAX_BLOB_BYTES} bytes).`);
    }
    if (doubles.length > AE_MAX_MEMBERS) throw new TypeError(`${prefix}Maximum of ${AE_MAX_MEMBERS} doubles supported.`);
    const text = (bytes) => (bytes === null ? null : new TextDecoder().decode(bytes));
    this.#points.push({
      dataset: this.dataset,
      timestamp: Date.now(),
      indexes: indexes.map(text),
      blobs: blobs.map(text),
      doubles,
    });
    return undefined;
  }
  points() {
    return this.#points.map((p) => ({ ...p }));
  }
}

// Miniflare's KV and R2 simulators, presented under workerd's class names (Miniflare hands
// out anonymous proxies; the Workers SDK wraps bindings by class name).
export class KvNamespace {
  #inner;
  constructor(inner) {
    this.#inner = inner;
  }
  get(...args) {
    return this.#inner.get(...args);
  }
  getWithMetadata(...args) {
    return this.#inner.getWithMetadata(...args);
  }
  put(...args) {
    return this.#inner.put(...args);
  }
  delete(...args) {
    return this.#inner.delete(...args);
  }
  list(...args) {
    return this.#inner.list(...args);
  }
}

export class R2Bucket {
  #inner;
  constructor(inner) {
    this.#inner = inner;
  }
  head(...args) {
    return this.#inner.head(...args);
  }
  get(...args) {
    return this.#inner.get(...args);
  }
  put(...args) {
    return this.#inner.put(...args);
  }
  delete(...args) {
    return this.#inner.delete(...args);
  }
  list(...args) {
    return this.#inner.list(...args);
  }
  createMultipartUpload(...args) {
    return this.#inner.createMultipartUpload(...args);
  }
}

// The AI binding: the models of worker/local/ai_models.mjs (what the local stand-in serves on
// workerd) behind an object named like workerd's class. `run`'s third argument (AI Gateway,
// raw responses, ...) is refused as the stand-in refuses it.
export class Ai {
  #models;
  constructor(models) {
    this.#models = models;
  }
  async run(model, inputs, options) {
    checkRunOptions(options);
    return this.#models.run(model, inputs);
  }
  // A copy of the entries, as RPC hands the caller on workerd.
  async models(params) {
    return structuredClone(await this.#models.models(params));
  }
}
