// JavaScript doubles of the bindings Miniflare cannot give a Python harness: the Rate
// Limiting binding and a Durable Object namespace whose objects have SQLite storage.
import initSqlJs from "sql.js";

// The Rate Limiting binding (class named like workerd's): limit({key}) -> {success}. Fixed
// windows of `period` seconds, counted per key, as one Cloudflare location would.
export class Ratelimit {
  #counts = new Map();
  constructor(config) {
    this.configure(config);
  }
  reset() {
    this.#counts.clear();
  }
  // A new limit/period, as a redeploy with another wrangler.toml would give.
  configure({ limit, period }) {
    // wrangler refuses other values: a simple rule's period is 10 or 60 seconds.
    if (![10, 60].includes(period)) throw new RangeError(`ratelimit period must be 10 or 60, got ${period}`);
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`ratelimit limit must be a positive integer, got ${limit}`);
    this.config = { limit, period };
    this.#counts.clear();
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

export function createRateLimiter(config) {
  return new Ratelimit(config);
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
  // The host's own: frees the database when the object goes away (not part of SqlStorage).
  close() {
    this._db.close();
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
// database) per name. `construct(state, env)` makes the object; `call(instance, method,
// ...args)` runs one RPC method the way workerd does (the Worker host passes its dispatch,
// which converts as workerd's does and calls strictly). Arguments and results are
// structured-cloned, as they are when they cross between isolates. `meter.micros` adds up
// the process CPU spent from each call to its answer: on Cloudflare an object runs in its
// own isolate, billed as the object's, not as the calling Worker's CPU (the benchmark
// reports it apart; with one request at a time, nothing else runs while a call is awaited).
export class DurableObjectNamespace {
  #objects = new Map();
  #construct;
  #call;
  #SQL;
  #meter;
  constructor(SQL, construct, call, meter = { micros: 0 }) {
    this.#SQL = SQL;
    this.#construct = construct;
    this.#call = call;
    this.#meter = meter;
  }
  reset() {
    for (const { state, instance } of this.#objects.values()) {
      state.storage.sql.close();
      instance.destroy?.();
    }
    this.#objects.clear();
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
    const meter = this.#meter;
    return new Proxy(
      {},
      {
        get(_, method) {
          if (method === "then" || typeof method !== "string") return undefined;
          return async (...args) => {
            const started = process.cpuUsage();
            try {
              return structuredClone(await call(instance, method, ...structuredClone(args)));
            } finally {
              const used = process.cpuUsage(started);
              meter.micros += used.user + used.system;
            }
          };
        },
      },
    );
  }
}

// Calls a Python object's method directly (the adapter-level harness's RPC: JS values in,
// the PyProxy result converted to JS).
async function directCall(instance, method, ...args) {
  const result = await instance[method](...args);
  return result?.toJs ? result.toJs({ dict_converter: Object.fromEntries }) : result;
}

export async function createDurableObjectNamespace(construct, env, call = directCall) {
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

// ExecutionContext: waitUntil promises are kept so a test can wait for them, and handed
// to `adopt` (the Worker host tracks them the way workerd extends a request's lifetime).
export function createContext(adopt = null) {
  const pending = [];
  return {
    waitUntil(promise) {
      if (!promise || typeof promise.then !== "function") throw new TypeError("waitUntil expects a Promise");
      pending.push(promise);
      adopt?.(promise);
    },
    passThroughOnException() {},
    async settle() {
      await Promise.all(pending.splice(0));
    },
  };
}

// A Queue producer binding: send(body, {contentType, delaySeconds}) with Queues' limits.
export function createQueue() {
  const sent = [];
  return {
    sent,
    async send(body, options = {}) {
      const delay = options.delaySeconds ?? 0;
      if (!Number.isInteger(delay) || delay < 0 || delay > 43200) throw new Error(`Invalid delaySeconds: ${delay}`);
      const text = JSON.stringify(body);
      if (new TextEncoder().encode(text).length > 128 * 1024) throw new Error("Message too large");
      sent.push({ body: JSON.parse(text), contentType: options.contentType ?? "json", delaySeconds: delay });
    },
  };
}

// A MessageBatch as the consumer handler receives it; records what was acked or retried.
// Class instances named like the host's (host/queues.mjs), not plain objects: the Workers
// SDK's RPC conversion would turn plain objects into dicts.
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

// A real HTTP server on 127.0.0.1 that records POSTs (the webhook receiver).
import { createServer } from "node:http";
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
// The host's own: points() (what was written, with the dataset and the host clock's time),
// clear(), fail(message) (every write throws that, as an outage would; null ends it).
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
  #failing = null;
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
    if (this.#failing !== null) throw new Error(this.#failing);
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
  clear() {
    this.#points = [];
    this.#failing = null;
  }
  fail(message) {
    this.#failing = message ?? null;
  }
}

// Miniflare's KV and R2 simulators, presented under workerd's class names (Miniflare hands
// out anonymous proxies; the Workers SDK wraps bindings by class name).
// The KV binding also counts operations (billing units on Cloudflare) for the control port.
// Both bindings can be told to fail for key prefixes the way an outage does: the awaited
// call rejects with the binding's error (KV: "KV GET failed: 503 ...", R2: "put: ... (10001)").
// Expiration (expirationTtl, expiration) follows the host's wall clock, which tests move,
// as the Worker's own clock does; Miniflare's simulator keeps real time.
export class KvNamespace {
  #inner;
  #ops = { reads: [], writes: 0 };
  #failing = { get: [], put: [] };
  #expires = new Map(); // key -> ms since the epoch, on the host's clock
  constructor(inner) {
    this.#inner = inner;
  }
  stats() {
    return { reads: this.#ops.reads.length, read_keys: [...this.#ops.reads], writes: this.#ops.writes };
  }
  resetStats() {
    this.#ops = { reads: [], writes: 0 };
  }
  // Reads (get, getWithMetadata) and writes (put) of keys under these prefixes fail.
  fail({ get = [], put = [] } = {}) {
    this.#failing = { get: [...get], put: [...put] };
  }
  #fails(op, key) {
    return this.#failing[op].some((prefix) => String(key).startsWith(prefix));
  }
  // Empty the namespace (expired keys too), as a fresh one is.
  async clear() {
    let cursor;
    do {
      const page = await this.#inner.list({ cursor });
      await Promise.all(page.keys.map((k) => this.#inner.delete(k.name)));
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    this.#expires.clear();
  }
  #expired(key) {
    const at = this.#expires.get(String(key));
    return at !== undefined && Date.now() >= at;
  }
  // Every live key with its value, metadata and expiration, read without counting operations.
  async dump() {
    const entries = [];
    let cursor;
    do {
      const page = await this.list({ cursor });
      for (const k of page.keys) {
        entries.push({ key: k.name, value: await this.#inner.get(k.name), metadata: k.metadata ?? null, expiration: k.expiration ?? null });
      }
      cursor = page.list_complete ? undefined : page.cursor;
    } while (cursor);
    return entries;
  }
  get(key, ...args) {
    this.#ops.reads.push(String(key));
    if (this.#fails("get", key)) return Promise.reject(new Error("KV GET failed: 503 Service Unavailable"));
    if (this.#expired(key)) return Promise.resolve(null);
    return this.#inner.get(key, ...args);
  }
  getWithMetadata(key, ...args) {
    this.#ops.reads.push(String(key));
    if (this.#fails("get", key)) return Promise.reject(new Error("KV GET failed: 503 Service Unavailable"));
    if (this.#expired(key)) return Promise.resolve({ value: null, metadata: null, cacheStatus: null });
    return this.#inner.getWithMetadata(key, ...args);
  }
  async put(key, value, options = {}) {
    this.#ops.writes++;
    if (this.#fails("put", key)) throw new Error("KV PUT failed: 429 Too Many Requests");
    await this.#inner.put(key, value, options);
    const { expiration, expirationTtl } = options ?? {};
    if (expirationTtl != null) this.#expires.set(String(key), Date.now() + Number(expirationTtl) * 1000);
    else if (expiration != null) this.#expires.set(String(key), Number(expiration) * 1000);
    else this.#expires.delete(String(key));
  }
  async delete(key) {
    await this.#inner.delete(key);
    this.#expires.delete(String(key));
  }
  async list(...args) {
    const page = await this.#inner.list(...args);
    return { ...page, keys: page.keys.filter((k) => !this.#expired(k.name)) };
  }
}

export class R2Bucket {
  #inner;
  #failing = { put: [] };
  constructor(inner) {
    this.#inner = inner;
  }
  // Writes (put) of keys under these prefixes fail ("" is every key).
  fail({ put = [] } = {}) {
    this.#failing = { put: [...put] };
  }
  #fails(op, key) {
    return this.#failing[op].some((prefix) => String(key).startsWith(prefix));
  }
  head(...args) {
    return this.#inner.head(...args);
  }
  get(...args) {
    return this.#inner.get(...args);
  }
  put(key, ...args) {
    if (this.#fails("put", key)) return Promise.reject(new Error("put: We encountered an internal error. Please try again. (10001)"));
    return this.#inner.put(key, ...args);
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
