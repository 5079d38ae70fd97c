// A JavaScript double of workerd's AI binding, for multipart models such as flux-2-dev,
// and for Llama Guard (the JSON chat model the gateway moderates prompts with).
//
// It accepts what the real binding accepts and nothing else: `inputs` must be a plain
// object `{multipart: {body: ReadableStream, contentType: "multipart/form-data; boundary=…"}}`.
// The body is parsed with the platform's own multipart parser. Failures are thrown as
// InferenceUpstreamError("<code>: <message>"), as on Cloudflare.
import { encodePng, imageSize, noisyPng } from "./png.mjs";

export const FLUX = "@cf/black-forest-labs/flux-2-dev";
export const GUARD = "@cf/meta/llama-guard-3-8b";
const TEXT_FIELDS = new Set(["prompt", "width", "height", "steps", "guidance", "seed"]);
const IMAGE_FIELDS = new Set(["input_image_0", "input_image_1", "input_image_2", "input_image_3"]);

export class InferenceUpstreamError extends Error {
  constructor(message) {
    super(message);
    this.name = "InferenceUpstreamError";
  }
}

const invalid = (message) => new InferenceUpstreamError(`5006: ${message}`);

function intField(fields, name, fallback, lo, hi) {
  if (!(name in fields)) return fallback;
  const value = Number(fields[name]);
  if (!Number.isInteger(value)) throw invalid(`Type mismatch of '/${name}', 'string' not in 'integer'`);
  if (value < lo || value > hi) throw invalid(`'/${name}' must be between ${lo} and ${hi}`);
  return value;
}

// The model catalog as `AI.models()` describes it (workers-types' AiModelsSearchObject):
// what the doubles serve. Descriptions abridged from Cloudflare's model pages.
const CATALOG = [
  {
    id: "6a4b7e1c-0d52-4f9e-9b1a-2f0c1d5e7a01",
    source: 1,
    name: FLUX,
    description: "FLUX.2 [dev] is an image model from Black Forest Labs: text-to-image and multi-reference editing.",
    task: { id: "3d6e1f22-8b0a-4b0e-a5c4-6f1e9b1a9d10", name: "Text-to-Image", description: "Generates images from input text." },
    tags: [],
    properties: [{ property_id: "partner", value: "true" }],
  },
  {
    id: "cc80437b-9a8d-4f1a-9c77-9aaf0d226922",
    source: 1,
    name: GUARD,
    description: "Llama Guard 3 is a Llama-3.1-8B pretrained model, fine-tuned for content safety classification.",
    task: { id: "c329a1f9-323d-4e91-b2aa-582dd4188d34", name: "Text Generation", description: "Family of generative text models." },
    tags: [],
    properties: [],
  },
];

// `AI.models(params?)`: the catalog filtered by `search` (name or description) and `task`.
async function catalogModels(params) {
  if (params !== undefined && !isPlainObject(params)) throw new TypeError("models() takes an optional plain object of search parameters");
  const search = String(params?.search ?? "").toLowerCase();
  const task = params?.task === undefined ? null : String(params.task).toLowerCase();
  return CATALOG.filter(
    (model) =>
      (!search || model.name.toLowerCase().includes(search) || model.description.toLowerCase().includes(search)) &&
      (task === null || model.task.name.toLowerCase() === task),
  ).map((model) => structuredClone(model));
}

// The binding object, named like workerd's class (the Workers SDK wraps bindings by class).
class Ai {
  #run;
  #models;
  constructor(run, models = catalogModels) {
    this.#run = run;
    this.#models = models;
  }
  run(model, inputs, options) {
    return this.#run(model, inputs, options);
  }
  models(params) {
    return this.#models(params);
  }
}

const isPlainObject = (value) => value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;

// Llama Guard 3: `{messages: [{role, content}, ...]}` in; asked for JSON it answers
// `{response: {safe, categories}}`, otherwise the text form `{response: "unsafe\nS1,S10"}`.
// Which words are unsafe (and in which category) is scripted, as are failures; `calls`
// counts the calls that passed the contract checks.
function createGuard() {
  const state = { unsafe: {}, failures: [], calls: 0, answerText: false };
  async function run(inputs) {
    if (!isPlainObject(inputs)) throw invalid(`inputs must be a plain object, got ${inputs?.constructor?.name}`);
    const { messages } = inputs;
    if (!Array.isArray(messages) || !messages.every((m) => isPlainObject(m) && "role" in m && "content" in m)) {
      throw invalid("required properties at '/messages' are 'role', 'content'");
    }
    state.calls++;
    if (state.failures.length) throw new InferenceUpstreamError(state.failures.shift());
    const text = messages.map((m) => String(m.content)).join(" ").toLowerCase();
    const hits = [...new Set(Object.entries(state.unsafe).filter(([word]) => text.includes(word.toLowerCase())).map(([, category]) => category))].sort();
    if (state.answerText) return { response: hits.length ? `unsafe\n${hits.join(",")}` : "safe" };
    return { response: { safe: !hits.length, categories: hits } };
  }
  return {
    run,
    // {unsafe?: {word: category}, failures?: [message], answer_text?: bool}: what is given is replaced.
    script({ unsafe, failures, answer_text: answerText }) {
      if (unsafe !== undefined) state.unsafe = { ...unsafe };
      if (failures !== undefined) state.failures = [...failures];
      if (answerText !== undefined) state.answerText = Boolean(answerText);
    },
    stats: () => ({ calls: state.calls, unsafe: state.unsafe, failures: state.failures, answer_text: state.answerText }),
    reset() {
      Object.assign(state, { unsafe: {}, failures: [], calls: 0, answerText: false });
    },
  };
}

export function createAI() {
  // `calls`: every call that passed the contract checks; `answered`: those that got an image.
  // `realistic`: answer images the size of real ones (~1.2 MB at 1024x768), not flat ones.
  const state = { calls: [], failures: [], latencyMs: 0, answered: 0, realistic: false };
  const guard = createGuard();

  async function run(model, inputs) {
    if (model === GUARD) return guard.run(inputs);
    if (model !== FLUX) throw new InferenceUpstreamError(`5007: No such model ${model}`);
    if (inputs === null || typeof inputs !== "object" || Object.getPrototypeOf(inputs) !== Object.prototype) {
      throw invalid(`inputs must be a plain object, got ${inputs?.constructor?.name}`);
    }
    const multipart = inputs.multipart;
    if (!multipart || typeof multipart !== "object" || Object.getPrototypeOf(multipart) !== Object.prototype) {
      throw invalid("this model requires {multipart: {body, contentType}}");
    }
    if (!(multipart.body instanceof ReadableStream)) {
      throw invalid(`multipart.body must be a ReadableStream, got ${multipart.body?.constructor?.name}`);
    }
    if (typeof multipart.contentType !== "string" || !/^multipart\/form-data;.*boundary=/i.test(multipart.contentType)) {
      throw invalid(`multipart.contentType must carry a boundary, got ${JSON.stringify(multipart.contentType)}`);
    }
    let form;
    let raw;
    try {
      raw = new Uint8Array(await new Response(multipart.body).arrayBuffer());
      form = await new Response(raw, { headers: { "content-type": multipart.contentType } }).formData();
    } catch (err) {
      throw invalid(`could not parse multipart body: ${err.message}`);
    }
    const fields = {};
    const files = {};
    for (const [name, value] of form.entries()) {
      if (typeof value === "string") {
        if (!TEXT_FIELDS.has(name)) throw invalid(`unknown field '${name}'`);
        fields[name] = value;
      } else {
        if (!IMAGE_FIELDS.has(name)) throw invalid(`unknown field '${name}'`);
        const bytes = new Uint8Array(await value.arrayBuffer());
        const size = imageSize(bytes);
        if (!size) throw invalid(`${name}: not a PNG, JPEG or WebP image`);
        if (size.width >= 512 || size.height >= 512) throw invalid(`${name} must be smaller than 512x512`);
        files[name] = { type: value.type, name: value.name, size: bytes.length, width: size.width, height: size.height, bytes };
      }
    }
    if (!fields.prompt) throw invalid("required properties at '/' are 'prompt'");
    const width = intField(fields, "width", 1024, 256, 1920);
    const height = intField(fields, "height", 768, 256, 1920);
    intField(fields, "steps", 25, 1, 50);
    intField(fields, "seed", 0, 0, Number.MAX_SAFE_INTEGER);
    state.calls.push({ model, fields, files, contentType: multipart.contentType, raw });
    if (state.latencyMs) await new Promise((ok) => setTimeout(ok, state.latencyMs));
    if (state.failures.length) throw new InferenceUpstreamError(state.failures.shift());
    state.answered++;
    const seed = Number(fields.seed ?? 0);
    const png = state.realistic ? noisyPng(width, height) : encodePng(width, height, [seed & 0xff, (seed >> 8) & 0xff, 128]);
    return { image: png.toString("base64") };
  }

  return {
    binding: new Ai(run),
    state,
    guard,
    failNext(message) {
      state.failures.push(message);
    },
    lastCall() {
      return state.calls.at(-1) ?? null;
    },
    callCount() {
      return state.calls.length;
    },
    setLatency(seconds) {
      state.latencyMs = seconds * 1000;
    },
    setRealistic(on) {
      state.realistic = Boolean(on);
    },
    // What a test may read back: every call's text fields and reference images (no bytes).
    stats() {
      return {
        calls: state.answered,
        latency_seconds: state.latencyMs / 1000,
        inputs: state.calls.map(({ model, fields, files, contentType, raw }) => ({
          model,
          fields,
          contentType,
          body: Buffer.from(raw).toString("base64"),
          files: Object.fromEntries(Object.entries(files).map(([k, { bytes, ...meta }]) => [k, meta])),
        })),
      };
    },
    reset() {
      state.calls.length = 0;
      state.answered = 0;
      state.failures.length = 0;
      state.latencyMs = 0;
      state.realistic = false;
      guard.reset();
    },
  };
}

// The AI binding backed by the Workers AI REST API (POST /accounts/{id}/ai/run/{model}),
// for running the host against the real model. Multipart models get the same body the
// binding would send; errors come back as InferenceUpstreamError("<code>: <message>").
export function createRestAI(accountId, apiToken) {
  const calls = [];
  async function run(model, inputs) {
    const url = `https://api.cloudflare.com/client/v4/accounts/${accountId}/ai/run/${model}`;
    const multipart = inputs?.multipart;
    const response = await fetch(url, {
      method: "POST",
      headers: {
        authorization: `Bearer ${apiToken}`,
        "content-type": multipart ? multipart.contentType : "application/json",
      },
      body: multipart ? multipart.body : JSON.stringify(inputs),
      duplex: "half",
    });
    calls.push(model);
    const payload = await response.json().catch(() => null);
    if (!response.ok || !payload?.success) {
      const error = payload?.errors?.[0];
      throw new InferenceUpstreamError(`${error?.code ?? response.status}: ${error?.message ?? response.statusText}`);
    }
    return payload.result;
  }
  async function models(params) {
    const query = new URLSearchParams(params?.search ? { search: String(params.search) } : {});
    const url = `https://api.cloudflare.com/client/v4/accounts/${accountId}/ai/models/search?${query}`;
    const response = await fetch(url, { headers: { authorization: `Bearer ${apiToken}` } });
    const payload = await response.json().catch(() => null);
    if (!response.ok || !payload?.success) throw new Error(`models search failed: HTTP ${response.status}`);
    return payload.result;
  }
  return {
    binding: new Ai(run, models),
    failNext() {
      throw new Error("the REST-backed AI binding cannot script failures");
    },
    setLatency() {},
    setRealistic() {},
    stats: () => ({ calls: calls.length, latency_seconds: 0, inputs: [] }),
    guard: {
      script() {
        throw new Error("the REST-backed AI binding cannot script Llama Guard");
      },
      stats: () => ({ calls: calls.filter((model) => model === GUARD).length }),
      reset() {},
    },
    reset() {
      calls.length = 0;
    },
  };
}

// The AI binding for benchmarks: the same contract checks on `inputs`, the body read to its
// end as the service would, then an answer at once with the next of `encoded` (base64
// images made beforehand), so that nothing the double does per call is counted as the
// Worker's work beyond what the real binding also costs the caller.
export function createFixedAI(encoded) {
  let next = 0;
  let calls = 0;
  async function run(model, inputs) {
    if (model !== FLUX) throw new InferenceUpstreamError(`5007: No such model ${model}`);
    const multipart = isPlainObject(inputs) ? inputs.multipart : undefined;
    if (!isPlainObject(multipart) || !(multipart.body instanceof ReadableStream)) {
      throw invalid("this model requires {multipart: {body: ReadableStream, contentType}}");
    }
    if (typeof multipart.contentType !== "string" || !/^multipart\/form-data;.*boundary=/i.test(multipart.contentType)) {
      throw invalid(`multipart.contentType must carry a boundary, got ${JSON.stringify(multipart.contentType)}`);
    }
    for await (const _ of multipart.body);
    calls++;
    return { image: encoded[next++ % encoded.length] };
  }
  return { binding: new Ai(run), stats: () => ({ calls }) };
}
