// JavaScript doubles of the bindings Miniflare cannot give a Python harness: the Rate
// Limiting binding and a Durable Object namespace whose objects have SQLite storage.
import initSqlJs from "sql.js";

// The Rate Limiting binding: limit({key}) -> {success}. Fixed windows of `period` seconds,
// counted per key, as one Cloudflare location would.
export function createRateLimiter({ limit, period }) {
  const counts = new Map();
  return {
    reset() {
      counts.clear();
    },
    async limit(options) {
      if (!options || typeof options.key !== "string") {
        throw new TypeError("limit() expects {key: string}");
      }
      const window = Math.floor(Date.now() / 1000 / period);
      const slot = `${options.key}\u0000${window}`;
      const used = counts.get(slot) ?? 0;
      if (used >= limit) return { success: false };
      counts.set(slot, used + 1);
      return { success: true };
    },
  };
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
    const statement = this._db.prepare(query);
    try {
      statement.bind(bindings);
      const rows = [];
      while (statement.step()) rows.push(statement.get());
      return new SqlStorageCursor(statement.getColumnNames(), rows);
    } finally {
      statement.free();
    }
  }
}

// Named like workerd's class so that the Workers SDK wraps it as it does in production.
class DurableObjectStorage {
  constructor(sql) {
    this.sql = sql;
  }
}

// A namespace: idFromName/get; one object instance (and one database) per name. Stub
// methods cross the JS boundary like RPC: arguments and results are JS values.
export async function createDurableObjectNamespace(construct, env) {
  const SQL = await initSqlJs();
  const objects = new Map();
  return {
    reset() {
      objects.clear();
    },
    idFromName(name) {
      return { name, toString: () => name };
    },
    get(id) {
      const name = String(id);
      if (!objects.has(name)) {
        const ctx = { id, storage: new DurableObjectStorage(new SqlStorage(new SQL.Database())), waitUntil() {} };
        objects.set(name, construct(ctx, env));
      }
      const instance = objects.get(name);
      return new Proxy({}, {
        get(_, method) {
          if (method === "then") return undefined;
          return async (...args) => {
            const result = await instance[method](...args);
            return result?.toJs ? result.toJs({ dict_converter: Object.fromEntries }) : result;
          };
        },
      });
    },
  };
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
  async match(request) {
    const entry = this.entries.get(CacheDouble.keyOf(request));
    if (!entry) return undefined;
    return new Response(entry.body.slice(), { status: entry.status, headers: entry.headers });
  }
  async put(request, response) {
    if (response.status === 206) throw new TypeError("Cannot cache response to a range request");
    const cacheControl = (response.headers.get("cache-control") || "").toLowerCase();
    const body = new Uint8Array(await response.arrayBuffer());
    if (/private|no-store/.test(cacheControl)) return;
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
export function createBatch(bodies) {
  const outcome = [];
  return {
    outcome,
    queue: "fluxgate-jobs",
    messages: bodies.map((body, i) => ({
      id: `m${i}`,
      body,
      attempts: 1,
      timestamp: new Date(),
      ack() {
        outcome.push({ id: `m${i}`, ack: true });
      },
      retry(options = {}) {
        outcome.push({ id: `m${i}`, retry: options.delaySeconds ?? 0 });
      },
    })),
  };
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
