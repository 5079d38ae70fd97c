// A JavaScript double of workerd's AI binding, for the FLUX.2 family (multipart models:
// flux-2-dev, flux-2-klein-4b, flux-2-klein-9b), for Llama Guard (the JSON chat model
// the gateway moderates prompts with) and for Llama 4 Scout (the vision chat model the
// gateway classifies its generated images with: output moderation).
//
// It accepts what the real binding accepts and nothing else: `inputs` must be a plain
// object `{multipart: {body: ReadableStream, contentType: "multipart/form-data; boundary=…"}}`.
// The body is parsed with the platform's own multipart parser. Each model has its own
// field rules: the klein models are distilled with a fixed 4-step schedule and refuse a
// `steps` field (Cloudflare changelog, 2026-01-15 and 2026-01-28). Failures are thrown as
// InferenceUpstreamError("<code>: <message>"), as on Cloudflare; a model it does not serve
// is "5007: No such model <id>".
import { createHash } from "node:crypto";
import { encodePng, imageSize, noisyPng } from "./png.mjs";

export const FLUX = "@cf/black-forest-labs/flux-2-dev";
export const KLEIN_4B = "@cf/black-forest-labs/flux-2-klein-4b";
export const KLEIN_9B = "@cf/black-forest-labs/flux-2-klein-9b";
export const GUARD = "@cf/meta/llama-guard-3-8b";
export const SCOUT = "@cf/meta/llama-4-scout-17b-16e-instruct";
// Each FLUX.2 model's rules. `fixedSteps`: the schedule cannot be set, and a `steps` field
// is refused; otherwise `steps` is 1-50. `tint`: the blue of the picture drawn, so that the
// same fields give a different picture for each model (dev keeps its original 128).
const IMAGE_MODELS = {
  [FLUX]: { fixedSteps: null, tint: 128 },
  [KLEIN_4B]: { fixedSteps: 4, tint: 64 },
  [KLEIN_9B]: { fixedSteps: 4, tint: 192 },
};
const imageModel = (model) => (Object.hasOwn(IMAGE_MODELS, model) ? IMAGE_MODELS[model] : null);
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
// what the doubles serve. The klein entries are Cloudflare's catalog data; flux-2-dev's
// description is abridged from its model page.
const TEXT_TO_IMAGE = { id: "3d6e1f35-341b-4915-a6c8-9a7142a9033a", name: "Text-to-Image", description: "Generates images from input text." };
const BFL_PROPERTIES = [
  { property_id: "partner", value: "true" },
  { property_id: "terms", value: "https://bfl.ai/legal/terms-of-service" },
];
const CATALOG = [
  {
    id: "6a4b7e1c-0d52-4f9e-9b1a-2f0c1d5e7a01",
    source: 1,
    name: FLUX,
    description: "FLUX.2 [dev] is an image model from Black Forest Labs: text-to-image and multi-reference editing.",
    task: TEXT_TO_IMAGE,
    tags: [],
    properties: [{ property_id: "partner", value: "true" }],
  },
  {
    id: "5cdffa8e-1b1e-48e8-85f1-ab9b943cdd32",
    source: 1,
    name: KLEIN_4B,
    description:
      "FLUX.2 [klein] is an ultra-fast, distilled image model. It unifies image generation and editing in a single model, delivering state-of-the-art quality enabling interactive workflows, real-time previews, and latency-critical applications.",
    task: TEXT_TO_IMAGE,
    tags: [],
    properties: BFL_PROPERTIES,
  },
  {
    id: "e580c765-810c-4da3-936c-a2808892f14c",
    source: 1,
    name: KLEIN_9B,
    description:
      "FLUX.2 [klein] 9B is a 9 billion parameter model that can generate images from text descriptions and supports multi-reference editing capabilities.",
    task: TEXT_TO_IMAGE,
    tags: [],
    properties: BFL_PROPERTIES,
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
  {
    id: "a0ad3a1c-7e0b-4b57-9a3e-6f0c4bd1e5f2",
    source: 1,
    name: SCOUT,
    description:
      "Meta's Llama 4 Scout is a 17 billion parameter model with 16 experts that is natively multimodal. These models leverage a mixture-of-experts architecture to offer industry-leading performance in text and image understanding.",
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

// A `steps` field sent to a model with a fixed schedule (the klein models).
function refuseFixedSteps(model, spec, hasSteps) {
  if (spec.fixedSteps !== null && hasSteps) {
    throw invalid(`'/steps' cannot be set for ${model}: the steps parameter is fixed at ${spec.fixedSteps} for this model`);
  }
}

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

// Llama 4 Scout as the output classifier. Its contract (workers-types
// Ai_Cf_Meta_Llama_4_Scout_17B_16E_Instruct): `{messages: [{role, content}], ...}`, content a
// string or an array of `{type: "text", text}` / `{type: "image_url", image_url: {url}}`
// parts, the url a base64 data URI ("HTTP URL will not be accepted"). The gateway must send
// a plain object with `response_format`, and one user message whose content has a text part
// and exactly one image_url part: a data URI of image/png, image/jpeg or image/webp whose
// bytes really are that format. Anything else is a 5006. It answers scripted verdicts (a
// queue of {safe, categories}; safe when empty) in the form asked (`form`: "object", the JSON
// "json_text", or Llama Guard's "text"), or scripted failures; `seen` records each image.
const IMAGE_MAGIC = {
  "image/png": (b) => b.length > 8 && b[0] === 0x89 && b.toString("latin1", 1, 4) === "PNG",
  "image/jpeg": (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  "image/webp": (b) => b.length > 12 && b.toString("latin1", 0, 4) === "RIFF" && b.toString("latin1", 8, 12) === "WEBP",
};

function scoutImage(inputs) {
  if (!isPlainObject(inputs)) throw invalid(`inputs must be a plain object, got ${inputs?.constructor?.name}`);
  const { messages } = inputs;
  if (!Array.isArray(messages) || !messages.length) throw invalid("required properties at '/' are 'messages'");
  if (!isPlainObject(inputs.response_format)) throw invalid("'/response_format' is required for a JSON answer");
  const images = [];
  let texts = 0;
  for (const message of messages) {
    if (!isPlainObject(message) || !("role" in message) || !("content" in message)) {
      throw invalid("required properties at '/messages' are 'role', 'content'");
    }
    if (typeof message.content === "string") continue;
    if (!Array.isArray(message.content) || message.role !== "user") {
      throw invalid("'/messages/content' must be a string or, for the user, an array of parts");
    }
    for (const part of message.content) {
      if (isPlainObject(part) && part.type === "text" && typeof part.text === "string") texts++;
      else if (isPlainObject(part) && part.type === "image_url" && isPlainObject(part.image_url)) images.push(part.image_url.url);
      else throw invalid(`unknown content part ${JSON.stringify(part?.type)}`);
    }
  }
  if (texts < 1 || images.length !== 1) throw invalid("the user message needs a text part and exactly one image_url part");
  const url = images[0];
  if (typeof url !== "string" || !url.startsWith("data:")) throw invalid("image_url.url must be a data URI: HTTP URL will not be accepted");
  const match = /^data:(image\/(?:png|jpeg|webp));base64,([A-Za-z0-9+/]*={0,2})$/.exec(url);
  if (!match || match[2].length % 4 !== 0) throw invalid(`image_url.url must be base64 image/png, image/jpeg or image/webp: ${url.slice(0, 40)}`);
  const bytes = Buffer.from(match[2], "base64");
  if (!IMAGE_MAGIC[match[1]](bytes)) throw invalid(`image_url.url says ${match[1]} but its bytes are not`);
  return { format: match[1], size: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}

function createScout() {
  const state = { verdicts: [], failures: [], calls: 0, seen: [], form: "object" };
  async function run(inputs) {
    const image = scoutImage(inputs);
    state.calls++;
    state.seen.push({ model: SCOUT, ...image });
    if (state.failures.length) throw new InferenceUpstreamError(state.failures.shift());
    const verdict = state.verdicts.shift() ?? { safe: true, categories: [] };
    const usage = { prompt_tokens: 1200, completion_tokens: 12, total_tokens: 1212 };
    if (state.form === "json_text") return { response: JSON.stringify(verdict), usage };
    if (state.form === "text") return { response: verdict.safe ? "safe" : `unsafe\n${verdict.categories.join(",")}`, usage };
    return { response: verdict, usage };
  }
  return {
    run,
    // {verdicts?: [{safe, categories}], failures?: [message], form?}: what is given is replaced.
    script({ verdicts, failures, form }) {
      if (verdicts !== undefined) state.verdicts = verdicts.map((v) => ({ safe: Boolean(v.safe), categories: [...(v.categories ?? [])] }));
      if (failures !== undefined) state.failures = [...failures];
      if (form !== undefined) state.form = String(form);
    },
    stats: () => ({ calls: state.calls, seen: state.seen, verdicts: state.verdicts, failures: state.failures, form: state.form }),
    reset() {
      Object.assign(state, { verdicts: [], failures: [], calls: 0, seen: [], form: "object" });
    },
  };
}

export function createAI() {
  // `calls`: every call that passed the contract checks; `answered`: those that got an image.
  // `realistic`: answer images the size of real ones (~1.2 MB at 1024x768), not flat ones.
  const state = { calls: [], failures: [], latencyMs: 0, answered: 0, realistic: false };
  const guard = createGuard();
  const scout = createScout();

  async function run(model, inputs) {
    if (model === GUARD) return guard.run(inputs);
    if (model === SCOUT) return scout.run(inputs);
    const spec = imageModel(model);
    if (!spec) throw new InferenceUpstreamError(`5007: No such model ${model}`);
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
    refuseFixedSteps(model, spec, "steps" in fields);
    if (!fields.prompt) throw invalid("required properties at '/' are 'prompt'");
    const width = intField(fields, "width", 1024, 256, 1920);
    const height = intField(fields, "height", 768, 256, 1920);
    if (spec.fixedSteps === null) intField(fields, "steps", 25, 1, 50);
    intField(fields, "seed", 0, 0, Number.MAX_SAFE_INTEGER);
    state.calls.push({ model, fields, files, contentType: multipart.contentType, raw });
    if (state.latencyMs) await new Promise((ok) => setTimeout(ok, state.latencyMs));
    if (state.failures.length) throw new InferenceUpstreamError(state.failures.shift());
    state.answered++;
    const seed = Number(fields.seed ?? 0);
    const png = state.realistic ? noisyPng(width, height) : encodePng(width, height, [seed & 0xff, (seed >> 8) & 0xff, spec.tint]);
    return { image: png.toString("base64") };
  }

  return {
    binding: new Ai(run),
    state,
    guard,
    scout,
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
      scout.reset();
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
    scout: {
      script() {
        throw new Error("the REST-backed AI binding cannot script the output classifier");
      },
      stats: () => ({ calls: calls.filter((model) => model === SCOUT).length, seen: [] }),
      reset() {},
    },
    reset() {
      calls.length = 0;
    },
  };
}

// The names of a multipart body's parts, read from each part's headers (cheaper than
// parsing the form: the boundary cannot occur inside a part, so this finds only headers).
function partNames(body, contentType) {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (!boundary) throw invalid(`multipart.contentType must carry a boundary, got ${JSON.stringify(contentType)}`);
  const delimiter = Buffer.from(`--${boundary[1] ?? boundary[2]}\r\n`);
  const names = new Set();
  for (let at = body.indexOf(delimiter); at !== -1; ) {
    const start = at + delimiter.length;
    const end = body.indexOf("\r\n\r\n", start);
    if (end === -1) break;
    const name = /;\s*name="([^"]*)"/i.exec(body.toString("latin1", start, end));
    if (name) names.add(name[1]);
    at = body.indexOf(delimiter, end);
  }
  return names;
}

// The AI binding for benchmarks: the same contract checks on `inputs`, the body read to its
// end as the service would, then an answer at once with the next of `encoded` (base64
// images made beforehand), so that nothing the double does per call is counted as the
// Worker's work beyond what the real binding also costs the caller. For a model with a
// fixed schedule (klein), the parts' names are read so that a `steps` field is refused.
export function createFixedAI(encoded) {
  let next = 0;
  let calls = 0;
  let classified = 0;
  async function run(model, inputs) {
    if (model === SCOUT) {
      // The output classifier, for a moderated miss: the input's shape is checked, not its
      // image (decoding 1.6 MB of base64 here would be charged to the Worker's CPU).
      const parts = isPlainObject(inputs) && Array.isArray(inputs.messages) ? inputs.messages.flatMap((m) => (Array.isArray(m?.content) ? m.content : [])) : [];
      const urls = parts.filter((part) => part?.type === "image_url").map((part) => part.image_url?.url);
      if (!isPlainObject(inputs?.response_format) || urls.length !== 1 || typeof urls[0] !== "string" || !urls[0].startsWith("data:image/")) {
        throw invalid("the classifier takes messages with one image_url data URI and a response_format");
      }
      classified++;
      return { response: { safe: true, categories: [] }, usage: { prompt_tokens: 1200, completion_tokens: 12, total_tokens: 1212 } };
    }
    const spec = imageModel(model);
    if (!spec) throw new InferenceUpstreamError(`5007: No such model ${model}`);
    const multipart = isPlainObject(inputs) ? inputs.multipart : undefined;
    if (!isPlainObject(multipart) || !(multipart.body instanceof ReadableStream)) {
      throw invalid("this model requires {multipart: {body: ReadableStream, contentType}}");
    }
    if (typeof multipart.contentType !== "string" || !/^multipart\/form-data;.*boundary=/i.test(multipart.contentType)) {
      throw invalid(`multipart.contentType must carry a boundary, got ${JSON.stringify(multipart.contentType)}`);
    }
    const chunks = [];
    for await (const chunk of multipart.body) if (spec.fixedSteps !== null) chunks.push(chunk);
    if (spec.fixedSteps !== null) refuseFixedSteps(model, spec, partNames(Buffer.concat(chunks), multipart.contentType).has("steps"));
    calls++;
    return { image: encoded[next++ % encoded.length] };
  }
  return { binding: new Ai(run), stats: () => ({ calls, classified }) };
}
