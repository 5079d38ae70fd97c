// KV and R2 in this process's memory, for the CPU benchmark (bench/worker.mjs).
//
// Miniflare's KV and R2 (what the tests use) are served by a workerd child process, and
// its Node-side clients cost this process real CPU per operation: about 2.4 ms for a KV
// read, 1 ms for every property read of an R2 object (a synchronous round trip through a
// worker thread), 8 ms to stream 1.2 MB. On Cloudflare that is I/O, not the Worker's CPU,
// so a benchmark on Miniflare would mostly measure Miniflare. These doubles keep the
// bindings' calling conventions (async everywhere, the same option and result shapes, the
// documented limits and their errors) at a cost close to nothing.
//
// Not modelled: KV's eventual consistency (writes are visible at once), R2 conditional
// requests (onlyIf), multipart uploads, checksums. An object's etag is random, not R2's
// MD5: hashing 1.2 MB here would be charged to the Worker.
import { randomBytes } from "node:crypto";

const encoder = new TextEncoder();
const bytesOf = (text) => encoder.encode(text).length;

async function toBytes(value) {
  if (value === null || value === undefined) return new Uint8Array(0);
  if (typeof value === "string") return encoder.encode(value);
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength));
  if (value instanceof Blob || value instanceof ReadableStream) return new Uint8Array(await new Response(value).arrayBuffer());
  throw new TypeError("The value must be a string, ArrayBuffer, ArrayBufferView, ReadableStream or Blob");
}

// Workers KV: keys up to 512 bytes, values up to 25 MiB, metadata up to 1024 bytes of
// JSON, expirationTtl of at least 60 s, cacheTtl of at least 30 s, list pages up to 1000.
export class MemoryKV {
  #entries = new Map(); // key -> {value: Uint8Array, metadata, expiration (s)}

  #live(key) {
    const entry = this.#entries.get(key);
    if (entry && entry.expiration !== undefined && entry.expiration * 1000 <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  static #checkKey(key) {
    if (key === "") throw new TypeError("KV GET failed: 400 Key names must not be empty");
    if (bytesOf(key) > 512) throw new TypeError(`KV GET failed: 414 UTF-8 encoded length of ${bytesOf(key)} exceeds key length limit of 512.`);
  }

  static #decode(bytes, type) {
    switch (type ?? "text") {
      case "text":
        return new TextDecoder().decode(bytes);
      case "json":
        return JSON.parse(new TextDecoder().decode(bytes));
      case "arrayBuffer":
        return bytes.slice().buffer;
      case "stream":
        return new Blob([bytes]).stream();
      default:
        throw new TypeError(`Unknown response type. Possible types are "text", "arrayBuffer", "json", and "stream".`);
    }
  }

  static #options(options) {
    const parsed = typeof options === "string" ? { type: options } : (options ?? {});
    if (parsed.cacheTtl !== undefined && !(parsed.cacheTtl >= 30)) {
      throw new TypeError(`KV GET failed: 400 Invalid cache_ttl of ${parsed.cacheTtl}. Cache TTL must be at least 30.`);
    }
    return parsed;
  }

  async get(key, options) {
    key = String(key);
    MemoryKV.#checkKey(key);
    const { type } = MemoryKV.#options(options);
    const entry = this.#live(key);
    return entry ? MemoryKV.#decode(entry.value, type) : null;
  }

  async getWithMetadata(key, options) {
    key = String(key);
    MemoryKV.#checkKey(key);
    const { type } = MemoryKV.#options(options);
    const entry = this.#live(key);
    if (!entry) return { value: null, metadata: null, cacheStatus: null };
    return { value: MemoryKV.#decode(entry.value, type), metadata: entry.metadata ?? null, cacheStatus: null };
  }

  async put(key, value, options = {}) {
    key = String(key);
    MemoryKV.#checkKey(key);
    if (key === "." || key === "..") throw new TypeError(`KV PUT failed: 400 Illegal key name "${key}".`);
    const bytes = await toBytes(value);
    if (bytes.length > 25 * 1024 * 1024) throw new TypeError("KV PUT failed: 413 Value length exceeds limit of 26214400.");
    const { expiration, expirationTtl, metadata } = options ?? {};
    const now = Math.floor(Date.now() / 1000);
    let expires;
    if (expirationTtl !== undefined) {
      if (!(expirationTtl >= 60)) throw new TypeError(`KV PUT failed: 400 Invalid expiration_ttl of ${expirationTtl}. Expiration TTL must be at least 60.`);
      expires = now + Number(expirationTtl);
    } else if (expiration !== undefined) {
      if (!(expiration >= now + 60)) throw new TypeError(`KV PUT failed: 400 Invalid expiration of ${expiration}. Expiration times must be at least 60 seconds in the future.`);
      expires = Number(expiration);
    }
    if (metadata !== undefined && bytesOf(JSON.stringify(metadata)) > 1024) {
      throw new TypeError("KV PUT failed: 413 Metadata length exceeds limit of 1024");
    }
    this.#entries.set(key, { value: bytes, metadata: metadata === undefined ? undefined : structuredClone(metadata), expiration: expires });
  }

  async delete(key) {
    key = String(key);
    MemoryKV.#checkKey(key);
    this.#entries.delete(key);
  }

  async list({ prefix = "", limit = 1000, cursor } = {}) {
    if (!(limit >= 1 && limit <= 1000)) throw new TypeError(`KV LIST failed: 400 Invalid key_count_limit of ${limit}.`);
    const names = [...this.#entries.keys()].filter((k) => k.startsWith(prefix) && this.#live(k)).sort();
    const start = cursor ? Number(Buffer.from(cursor, "base64url").toString()) : 0;
    const page = names.slice(start, start + limit);
    const keys = page.map((name) => {
      const { metadata, expiration } = this.#entries.get(name);
      return { name, ...(expiration !== undefined ? { expiration } : {}), ...(metadata !== undefined ? { metadata } : {}) };
    });
    const more = start + limit < names.length;
    return { keys, list_complete: !more, ...(more ? { cursor: Buffer.from(String(start + limit)).toString("base64url") } : {}), cacheStatus: null };
  }
}

// R2: keys up to 1024 bytes, custom metadata up to 2048 bytes, list pages up to 1000.
class R2Object {
  constructor(key, stored) {
    this.key = key;
    this.version = stored.version;
    this.size = stored.bytes.length;
    this.etag = stored.etag;
    this.httpEtag = `"${stored.etag}"`;
    this.uploaded = stored.uploaded;
    this.httpMetadata = { ...stored.httpMetadata };
    this.customMetadata = { ...stored.customMetadata };
    this.checksums = {};
    this.storageClass = "Standard";
  }
  writeHttpMetadata(headers) {
    for (const [name, header] of [["contentType", "content-type"], ["contentLanguage", "content-language"], ["contentDisposition", "content-disposition"], ["contentEncoding", "content-encoding"], ["cacheControl", "cache-control"]]) {
      if (this.httpMetadata[name] !== undefined) headers.set(header, this.httpMetadata[name]);
    }
  }
}

// As R2's body arrives from the network: chunk by chunk as the reader pulls, each a copy
// (the stored bytes stay intact), nothing done before the first read.
const CHUNK = 64 * 1024;
function streamOf(bytes) {
  let offset = 0;
  return new ReadableStream({
    pull(controller) {
      if (offset >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(offset, offset + CHUNK));
      offset += CHUNK;
    },
  });
}

class R2ObjectBody extends R2Object {
  #slice;
  constructor(key, stored, range) {
    super(key, stored);
    this.range = range;
    this.#slice = stored.bytes.subarray(range.offset, range.offset + range.length);
    this.body = streamOf(this.#slice);
    this.bodyUsed = false;
  }
  async arrayBuffer() {
    this.bodyUsed = true;
    return this.#slice.slice().buffer;
  }
  async text() {
    this.bodyUsed = true;
    return new TextDecoder().decode(this.#slice);
  }
  async json() {
    return JSON.parse(await this.text());
  }
  async blob() {
    this.bodyUsed = true;
    return new Blob([this.#slice], { type: this.httpMetadata.contentType ?? "" });
  }
}

export class MemoryR2 {
  #objects = new Map();

  static #checkKey(op, key) {
    if (bytesOf(key) > 1024) throw new TypeError(`${op}: The specified object name is not valid. (10020)`);
  }

  #range(stored, option) {
    const size = stored.bytes.length;
    if (!option) return { offset: 0, length: size };
    if (option instanceof Headers) throw new TypeError("get: a Headers range is not modelled by this double");
    if (option.suffix !== undefined) {
      const length = Math.min(Number(option.suffix), size);
      return { offset: size - length, length };
    }
    const offset = Number(option.offset ?? 0);
    if (offset > size || offset < 0) throw new RangeError("get: The requested range is not satisfiable (10039)");
    const length = option.length === undefined ? size - offset : Math.min(Number(option.length), size - offset);
    return { offset, length };
  }

  async head(key) {
    key = String(key);
    MemoryR2.#checkKey("head", key);
    const stored = this.#objects.get(key);
    return stored ? new R2Object(key, stored) : null;
  }

  async get(key, options = {}) {
    key = String(key);
    MemoryR2.#checkKey("get", key);
    const stored = this.#objects.get(key);
    return stored ? new R2ObjectBody(key, stored, this.#range(stored, options?.range)) : null;
  }

  async put(key, value, options = {}) {
    key = String(key);
    MemoryR2.#checkKey("put", key);
    const customMetadata = { ...(options?.customMetadata ?? {}) };
    const metadataBytes = Object.entries(customMetadata).reduce((n, [k, v]) => n + bytesOf(k) + bytesOf(String(v)), 0);
    if (metadataBytes > 2048) throw new TypeError("put: Your metadata headers exceed the maximum allowed metadata size. (10012)");
    const stored = {
      bytes: await toBytes(value),
      etag: randomBytes(16).toString("hex"),
      version: randomBytes(16).toString("hex"),
      uploaded: new Date(),
      httpMetadata: { ...(options?.httpMetadata ?? {}) },
      customMetadata: Object.fromEntries(Object.entries(customMetadata).map(([k, v]) => [k, String(v)])),
    };
    this.#objects.set(key, stored);
    return new R2Object(key, stored);
  }

  async delete(keys) {
    for (const key of Array.isArray(keys) ? keys : [keys]) this.#objects.delete(String(key));
  }

  async list({ prefix = "", limit = 1000, cursor } = {}) {
    if (!(limit >= 1 && limit <= 1000)) throw new TypeError("list: MaxKeys params must be positive integer <= 1000. (10022)");
    const keys = [...this.#objects.keys()].filter((k) => k.startsWith(prefix)).sort();
    const start = cursor ? Number(Buffer.from(cursor, "base64url").toString()) : 0;
    const page = keys.slice(start, start + limit);
    const truncated = start + limit < keys.length;
    return {
      objects: page.map((k) => new R2Object(k, this.#objects.get(k))),
      truncated,
      ...(truncated ? { cursor: Buffer.from(String(start + limit)).toString("base64url") } : {}),
      delimitedPrefixes: [],
    };
  }
}
