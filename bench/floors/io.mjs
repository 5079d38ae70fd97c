// The same I/O as the Worker's paths, done from plain JS on the same stack: what any Worker
// pays here for it, whatever its language. Bound to the same KV namespace, R2 bucket and AI
// stand-in as Fluxgate (Miniflare keeps one store per namespace id and bucket name), so the
// benchmark can subtract it from the path that makes it.
//
//   GET /ai                      one image from the AI stand-in, the gateway's multipart body
//   GET /kv?key=A&key=B          those KV keys read as a hit reads them (cacheTtl 60)
//   GET /r2?key=K   [Range: …]   an R2 object streamed out (a single bytes=a-b range: 206)
//   GET /r2/b64?key=K            an R2 object read whole, answered as a b64_json body
//   GET /r2/put?bytes=N          N bytes (made once) written to one R2 key, as a miss stores
//   GET /kv/list                 the namespace's keys (setup only)
//   GET /r2/list                 the bucket's keys (setup only)
const MODEL = "@cf/black-forest-labs/flux-2-dev";
const PUT_KEY = "bench/io-put.bin";
let payload = null;

function form() {
  const body = new FormData();
  for (const [name, value] of Object.entries({ prompt: "a lighthouse at dusk", width: "1024", height: "768", steps: "4" })) body.append(name, value);
  return new Response(body);
}

async function ai(env) {
  const serialised = form();
  const result = await env.AI.run(MODEL, { multipart: { body: serialised.body, contentType: serialised.headers.get("content-type") } });
  return Response.json({ length: result.image.length });
}

async function r2(env, url, request) {
  const match = /^bytes=(\d+)-(\d+)$/.exec(request.headers.get("range") ?? "");
  const range = match ? { offset: Number(match[1]), length: Number(match[2]) - Number(match[1]) + 1 } : undefined;
  const object = await env.IMAGES.get(url.searchParams.get("key"), range ? { range } : {});
  if (!object) return new Response("no such object", { status: 404 });
  return new Response(object.body, { status: range ? 206 : 200, headers: { "content-type": object.httpMetadata?.contentType ?? "application/octet-stream" } });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case "/ai":
        return ai(env);
      case "/kv": {
        const values = await Promise.all(url.searchParams.getAll("key").map((key) => env.KV.get(key, { cacheTtl: 60 })));
        return Response.json({ found: values.filter((v) => v !== null).length });
      }
      case "/r2":
        return r2(env, url, request);
      case "/r2/b64": {
        const object = await env.IMAGES.get(url.searchParams.get("key"));
        const bytes = new Uint8Array(await object.arrayBuffer());
        const body = `{"data":[{"b64_json":"${bytes.toBase64()}"}]}`;
        return new Response(body, { headers: { "content-type": "application/json" } });
      }
      case "/r2/put": {
        const size = Number(url.searchParams.get("bytes"));
        if (payload?.length !== size) payload = new Uint8Array(size).fill(0x5a);
        await env.IMAGES.put(PUT_KEY, payload, { httpMetadata: { contentType: "image/png" } });
        return Response.json({ stored: size });
      }
      case "/kv/list":
        return Response.json((await env.KV.list()).keys.map((k) => k.name));
      case "/r2/list":
        return Response.json((await env.IMAGES.list()).objects.map((o) => o.key));
      default:
        return new Response("not found", { status: 404 });
    }
  },
};
