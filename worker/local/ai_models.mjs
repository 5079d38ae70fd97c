// The models the local AI stand-in serves, and their contracts: the doubles of the FLUX.2
// family (multipart models: flux-2-dev, flux-2-klein-4b, flux-2-klein-9b), of Llama Guard (the
// JSON chat model the gateway moderates prompts with) and of Llama 4 Scout (the vision chat
// model the gateway classifies its generated images with: output moderation), the catalog
// `AI.models()` answers, and the same calls sent to the Workers AI REST API instead. Never
// deployed.
//
// One copy of the contract, used twice: worker/local/ai.mjs serves it on workerd as the
// Python Worker's `AI` binding (a WorkerEntrypoint reached over RPC), and the Pyodide unit
// harness (tests/pyodide/harness.mjs) binds it in process in Node. So this module imports
// nothing but what both have: node:buffer, node:crypto and node:zlib (workerd: nodejs_compat),
// and the platform's Response, ReadableStream and fetch.
//
// It accepts what the real binding accepts and nothing else: `inputs` must be a plain object
// `{multipart: {body: ReadableStream, contentType: "multipart/form-data; boundary=…"}}`; the
// body is parsed with the platform's own multipart parser (`Response.formData()`: workerd's,
// or Node's). Each model has its own field rules: the klein models are distilled with a fixed
// 4-step schedule and refuse a `steps` field (Cloudflare changelog, 2026-01-15 and
// 2026-01-28). Failures are thrown as InferenceUpstreamError("<code>: <message>"), as on
// Cloudflare; a model it does not serve is "5007: No such model <id>".
//
// The scripting methods (failNext, setLatency, setRealistic, guard.script, scout.script) and
// what they read back (stats) check their arguments and throw errors carrying an HTTP
// `status` (400 for a bad argument, 409 for what the REST backend cannot script), which the
// stand-in's control routes answer with.
import { Buffer } from "node:buffer";
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

// Objects that come over RPC are rebuilt in the stand-in's isolate, so a plain object sent by
// the Python Worker has that isolate's Object.prototype, and anything else (a FormData, a
// Map, a class instance) is told apart as it would be on Cloudflare. (In the harness the
// Python side's objects are made in the same realm, Node's, and told apart the same way.)
export const isPlainObject = (value) => value !== null && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype;

function intField(fields, name, fallback, lo, hi) {
  if (!(name in fields)) return fallback;
  const value = Number(fields[name]);
  if (!Number.isInteger(value)) throw invalid(`Type mismatch of '/${name}', 'string' not in 'integer'`);
  if (value < lo || value > hi) throw invalid(`'/${name}' must be between ${lo} and ${hi}`);
  return value;
}

// A `steps` field sent to a model with a fixed schedule (the klein models).
function refuseFixedSteps(model, spec, hasSteps) {
  if (spec.fixedSteps !== null && hasSteps) {
    throw invalid(`'/steps' cannot be set for ${model}: the steps parameter is fixed at ${spec.fixedSteps} for this model`);
  }
}

// The model catalog as `AI.models()` describes it (workers-types' AiModelsSearchObject):
// what the doubles serve. The klein entries are Cloudflare's catalog data; flux-2-dev's
// description is abridged from its model page.
const TEXT_TO_IMAGE = { id: "3d6e1f35-341b-4915-a6c8-9a7142a9033a", name: "Text-to-Image", description: "Generates images from input text." };
const TEXT_GENERATION = { id: "c329a1f9-323d-4e91-b2aa-582dd4188d34", name: "Text Generation", description: "Family of generative text models." };
const BFL_PROPERTIES = [
  { property_id: "partner", value: "true" },
  { property_id: "terms", value: "https://bfl.ai/legal/terms-of-service" },
];
export const CATALOG = [
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
    task: TEXT_GENERATION,
    tags: [],
    properties: [],
  },
  {
    id: "a0ad3a1c-7e0b-4b57-9a3e-6f0c4bd1e5f2",
    source: 1,
    name: SCOUT,
    description:
      "Meta's Llama 4 Scout is a 17 billion parameter model with 16 experts that is natively multimodal. These models leverage a mixture-of-experts architecture to offer industry-leading performance in text and image understanding.",
    task: TEXT_GENERATION,
    tags: [],
    properties: [],
  },
];

// `AI.models(params?)`: the catalog filtered by `search` (name or description) and `task`.
// The entries themselves are returned: RPC serialises the answer on workerd, so the caller
// gets its own copy there; an in-process binding must copy them.
export async function catalogModels(params) {
  if (params !== undefined && !isPlainObject(params)) throw new TypeError("models() takes an optional plain object of search parameters");
  const search = String(params?.search ?? "").toLowerCase();
  const task = params?.task === undefined ? null : String(params.task).toLowerCase();
  return CATALOG.filter(
    (model) =>
      (!search || model.name.toLowerCase().includes(search) || model.description.toLowerCase().includes(search)) &&
      (task === null || model.task.name.toLowerCase() === task),
  );
}

// A control route's failure, answered with its HTTP status and {error: message}.
export const controlError = (status, message) => Object.assign(new Error(message), { status });
export const badBody = (message) => controlError(400, message);

// The checks on scripted answers: a test that sends a typo gets a 400, not a script that
// silently does nothing.
function onlyKeys(body, keys) {
  const unknown = Object.keys(body).filter((key) => !keys.includes(key));
  if (unknown.length) throw badBody(`unknown field(s) ${unknown.join(", ")}; expected ${keys.join(", ")}`);
}
function stringList(value, name) {
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw badBody(`${name} must be a list of strings`);
  return [...value];
}

// Llama Guard 3: `{messages: [{role, content}, ...]}` in; asked for JSON it answers
// `{response: {safe, categories}}`, otherwise the text form `{response: "unsafe\nS1,S10"}`.
// Which words are unsafe (and in which category) is scripted, as are failures; `calls`
// counts the calls that passed the contract checks.
export function createGuard() {
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
    script(body) {
      onlyKeys(body, ["unsafe", "failures", "answer_text"]);
      const { unsafe, failures, answer_text: answerText } = body;
      if (unsafe !== undefined && !(isPlainObject(unsafe) && Object.values(unsafe).every((c) => typeof c === "string"))) {
        throw badBody("unsafe must be an object of word: category");
      }
      if (answerText !== undefined && typeof answerText !== "boolean") throw badBody("answer_text must be true or false");
      const scripted = failures === undefined ? undefined : stringList(failures, "failures");
      if (unsafe !== undefined) state.unsafe = { ...unsafe };
      if (scripted !== undefined) state.failures = scripted;
      if (answerText !== undefined) state.answerText = answerText;
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
const SCOUT_FORMS = ["object", "json_text", "text"];

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

export function createScout() {
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
    // {verdicts?: [{safe, categories?}], failures?: [message], form?}: what is given is replaced.
    script(body) {
      onlyKeys(body, ["verdicts", "failures", "form"]);
      const { verdicts, failures, form } = body;
      if (verdicts !== undefined && !(Array.isArray(verdicts) && verdicts.every(isPlainObject))) {
        throw badBody("verdicts must be a list of {safe, categories}");
      }
      if (form !== undefined && !SCOUT_FORMS.includes(form)) throw badBody(`form must be one of ${SCOUT_FORMS.join(", ")}`);
      const queued = verdicts?.map((v) => ({ safe: Boolean(v.safe), categories: stringList(v.categories ?? [], "a verdict's categories") }));
      const scripted = failures === undefined ? undefined : stringList(failures, "failures");
      if (queued !== undefined) state.verdicts = queued;
      if (scripted !== undefined) state.failures = scripted;
      if (form !== undefined) state.form = form;
    },
    stats: () => ({ calls: state.calls, seen: state.seen, verdicts: state.verdicts, failures: state.failures, form: state.form }),
    reset() {
      Object.assign(state, { verdicts: [], failures: [], calls: 0, seen: [], form: "object" });
    },
  };
}

// The offline models: placeholder pictures, scripted failures and latency.
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
    if (!isPlainObject(inputs)) throw invalid(`inputs must be a plain object, got ${inputs?.constructor?.name}`);
    const multipart = inputs.multipart;
    if (!isPlainObject(multipart)) throw invalid("this model requires {multipart: {body, contentType}}");
    // A stream sent over RPC arrives as a ReadableStream of this isolate; a body sent as
    // bytes, a string or a Blob arrives as that, and is refused as on Cloudflare.
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
    // The picture is drawn from the whole request (model, fields, reference images), so that
    // two requests give perceptually unrelated images, and one request the same bytes.
    const key = JSON.stringify([model, Object.entries(fields).sort(), Object.keys(files).sort().map((name) => createHash("sha256").update(files[name].bytes).digest("hex"))]);
    const png = state.realistic ? noisyPng(width, height, key) : encodePng(width, height, [seed & 0xff, (seed >> 8) & 0xff, spec.tint], key);
    return { image: png.toString("base64") };
  }

  return {
    run,
    models: catalogModels,
    guard,
    scout,
    failNext({ message }) {
      if (typeof message !== "string") throw badBody("message must be a string, e.g. \"3040: Capacity temporarily exceeded\"");
      state.failures.push(message);
    },
    setLatency({ seconds }) {
      if (typeof seconds !== "number" || !(seconds >= 0) || !Number.isFinite(seconds)) throw badBody("seconds must be a number >= 0");
      state.latencyMs = seconds * 1000;
    },
    setRealistic({ on }) {
      if (typeof on !== "boolean") throw badBody("on must be true or false");
      state.realistic = on;
    },
    // The last call that passed the contract checks, as recorded: {model, fields, files,
    // contentType, raw}, each reference image with its bytes. In process only (the harness).
    lastCall() {
      return state.calls.at(-1) ?? null;
    },
    // What a test may read back: the images answered, and every call's text fields, raw
    // body (base64) and reference images (their metadata, not their bytes).
    stats() {
      return {
        calls: state.answered,
        latency_seconds: state.latencyMs / 1000,
        inputs: state.calls.map(({ model, fields, files, contentType, raw }) => ({
          model,
          fields,
          contentType,
          body: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64"),
          files: Object.fromEntries(Object.entries(files).map(([field, { bytes, ...meta }]) => [field, meta])),
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

// The models behind the Workers AI REST API (POST /accounts/{id}/ai/run/{model}), for running
// the Worker locally against the real models. Multipart models get the same body the binding
// would send; errors come back as InferenceUpstreamError("<code>: <message>"). Nothing can be
// scripted: those control routes answer 409.
export function createRestAI(accountId, apiToken) {
  const calls = [];
  const api = `https://api.cloudflare.com/client/v4/accounts/${accountId}/ai`;
  const unscriptable = (what) => () => {
    throw controlError(409, `the stand-in calls the Workers AI REST API (CLOUDFLARE_ACCOUNT_ID is set): ${what} cannot be scripted`);
  };
  async function run(model, inputs) {
    const multipart = inputs?.multipart;
    const response = await fetch(`${api}/run/${model}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${apiToken}`,
        "content-type": multipart ? multipart.contentType : "application/json",
      },
      body: multipart ? multipart.body : JSON.stringify(inputs),
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
    const response = await fetch(`${api}/models/search?${query}`, { headers: { authorization: `Bearer ${apiToken}` } });
    const payload = await response.json().catch(() => null);
    if (!response.ok || !payload?.success) throw new Error(`models search failed: HTTP ${response.status}`);
    return payload.result;
  }
  return {
    run,
    models,
    failNext: unscriptable("failures"),
    setLatency: unscriptable("latency"),
    setRealistic: unscriptable("image sizes"),
    stats: () => ({ calls: calls.length, latency_seconds: 0, inputs: [] }),
    guard: {
      script: unscriptable("Llama Guard"),
      stats: () => ({ calls: calls.filter((model) => model === GUARD).length }),
    },
    scout: {
      script: unscriptable("the output classifier"),
      stats: () => ({ calls: calls.filter((model) => model === SCOUT).length, seen: [] }),
    },
    reset() {
      calls.length = 0;
    },
  };
}

// `run`'s third argument (AI Gateway, raw responses, ...): the gateway passes none, and the
// doubles do not pretend to honour one.
export function checkRunOptions(options) {
  if (options !== undefined && !(isPlainObject(options) && !Object.keys(options).length)) {
    throw new TypeError("the local AI stand-in does not support run() options");
  }
}
