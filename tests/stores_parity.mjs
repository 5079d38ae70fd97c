// The same KV and R2 operations against Miniflare's simulators and against the benchmark's
// in-process doubles (host/memory_stores.mjs); prints one JSON line per backend with what
// each operation gave (a value, a shape, or "error"). tests/test_memory_stores.py compares.
import { Miniflare } from "miniflare";
import { MemoryKV, MemoryR2 } from "../host/memory_stores.mjs";

async function outcome(run) {
  try {
    return await run();
  } catch {
    return "error";
  }
}

async function kvOps(kv) {
  const out = {};
  out.put = await outcome(() => kv.put("a", "1"));
  out.get = await outcome(() => kv.get("a"));
  out.get_json = await outcome(() => kv.get("a", { type: "json" }));
  out.get_cached = await outcome(() => kv.get("a", { type: "text", cacheTtl: 60 }));
  out.get_short_cache_ttl = await outcome(() => kv.get("a", { cacheTtl: 10 }));
  out.get_missing = await outcome(() => kv.get("missing"));
  out.put_short_ttl = await outcome(() => kv.put("t", "x", { expirationTtl: 30 }));
  out.put_ttl = await outcome(() => kv.put("t", "x", { expirationTtl: 120 }));
  out.put_metadata = await outcome(() => kv.put("m", "v", { metadata: { n: 1 } }));
  out.with_metadata = await outcome(async () => {
    const { value, metadata } = await kv.getWithMetadata("m");
    return { value, metadata };
  });
  out.big_metadata = await outcome(() => kv.put("m2", "v", { metadata: { n: "x".repeat(2000) } }));
  out.long_key = await outcome(() => kv.put("k".repeat(513), "v"));
  out.list = await outcome(async () => {
    const page = await kv.list({ prefix: "" });
    return { names: page.keys.map((k) => k.name), complete: page.list_complete, metadata: page.keys.find((k) => k.name === "m")?.metadata };
  });
  out.list_paged = await outcome(async () => {
    const page = await kv.list({ limit: 2 });
    const next = await kv.list({ limit: 2, cursor: page.cursor });
    return { first: page.keys.map((k) => k.name), complete: page.list_complete, second: next.keys.map((k) => k.name) };
  });
  out.delete = await outcome(() => kv.delete("a"));
  out.get_deleted = await outcome(() => kv.get("a"));
  return out;
}

async function r2Ops(r2) {
  const out = {};
  const bytes = new Uint8Array(100_000).map((_, i) => i % 251);
  const shape = (o) => o && { key: o.key, size: o.size, type: o.httpMetadata?.contentType, custom: o.customMetadata, httpEtag: o.httpEtag === `"${o.etag}"` };
  out.put = await outcome(async () => shape(await r2.put("img/a.png", bytes, { httpMetadata: { contentType: "image/png" }, customMetadata: { seed: "1" } })));
  out.head = await outcome(async () => shape(await r2.head("img/a.png")));
  out.head_missing = await outcome(() => r2.head("img/none.png"));
  out.get = await outcome(async () => {
    const o = await r2.get("img/a.png");
    const body = new Uint8Array(await new Response(o.body).arrayBuffer());
    return { ...shape(o), length: body.length, same: body.every((b, i) => b === bytes[i]), range: o.range };
  });
  out.get_range = await outcome(async () => {
    const o = await r2.get("img/a.png", { range: { offset: 10, length: 5 } });
    return { size: o.size, range: o.range, body: [...new Uint8Array(await o.arrayBuffer())] };
  });
  out.get_suffix = await outcome(async () => {
    const o = await r2.get("img/a.png", { range: { suffix: 3 } });
    return { size: o.size, body: [...new Uint8Array(await o.arrayBuffer())] };
  });
  out.get_missing = await outcome(() => r2.get("img/none.png"));
  out.put_string = await outcome(async () => shape(await r2.put("t.txt", "hello")));
  out.text = await outcome(async () => (await r2.get("t.txt")).text());
  out.big_metadata = await outcome(() => r2.put("m", "x", { customMetadata: { k: "v".repeat(3000) } }));
  out.long_key = await outcome(() => r2.put("k".repeat(1025), "x"));
  out.list = await outcome(async () => {
    const page = await r2.list();
    return { keys: page.objects.map((o) => o.key), truncated: page.truncated };
  });
  out.list_paged = await outcome(async () => {
    const page = await r2.list({ limit: 1 });
    const next = await r2.list({ limit: 1, cursor: page.cursor });
    return { first: page.objects.map((o) => o.key), truncated: page.truncated, second: next.objects.map((o) => o.key) };
  });
  out.delete_many = await outcome(() => r2.delete(["t.txt", "img/a.png"]));
  out.after_delete = await outcome(async () => (await r2.list()).objects.map((o) => o.key));
  return out;
}

const mf = new Miniflare({ modules: true, script: "export default { fetch() { return new Response(null) } }", kvNamespaces: ["KV"], r2Buckets: ["R2"] });
const miniflare = { kv: await kvOps(await mf.getKVNamespace("KV")), r2: await r2Ops(await mf.getR2Bucket("R2")) };
await mf.dispose();
const memory = { kv: await kvOps(new MemoryKV()), r2: await r2Ops(new MemoryR2()) };
console.log(JSON.stringify({ miniflare, memory }));
