// A local stand-in for the Workers AI binding, used by `npm run worker` and the tests; never
// deployed. The AI binding cannot run offline, so this Worker runs on workerd next to the
// Python Worker and is bound to it as `AI` through a service binding: the Python Worker's
// `env.AI.run(model, inputs)` and `env.AI.models(params)` reach the RPC methods of the
// default export below. What it serves, and the contract each model keeps, is
// ./ai_models.mjs (the FLUX.2 family, Llama Guard, Llama 4 Scout, the catalog; the same
// module the Pyodide unit harness binds in Node). Failures are thrown as
// InferenceUpstreamError("<code>: <message>"); RPC hands the caller an instance of Error, not
// of that class, that keeps its name and message ("InferenceUpstreamError: 3040: ..." as
// text, as from the real binding), which is all the gateway reads: src/fluxgate/model/upstream.py
// finds "<code>: <message>" anywhere in the text.
//
// Its `fetch` is the tests' control surface (the Python Worker never calls it): script
// failures, latency, realistic image sizes, Llama Guard and Scout answers; read what each
// model was given; reset. JSON in, JSON out; routes and shapes are those the tests' doubles
// read (tests/support/model.py, guard.py, scout.py). With CLOUDFLARE_ACCOUNT_ID and
// CLOUDFLARE_API_TOKEN set on this Worker, `run` and `models` go to the Workers AI REST API
// instead, and the scripting routes answer 409.
import { WorkerEntrypoint } from "cloudflare:workers";
import { badBody, checkRunOptions, controlError, createAI, createRestAI, isPlainObject } from "./ai_models.mjs";

// workerd keeps one isolate per Worker here, so module state outlives each call: the tests
// script it through `fetch` and the Python Worker's calls then meet it. Which backend serves
// is fixed by this Worker's env (the same for every call), read on the first call.
const placeholder = createAI();
let rest = null;
let configured = false;
function backend(env) {
  if (!configured) {
    // LATENCY_SECONDS (npm run worker sets it from FLUXGATE_PLACEHOLDER_LATENCY_SECONDS): the
    // placeholders take as long as a real model would, until a test's control route says not.
    configured = true;
    if (env.LATENCY_SECONDS) placeholder.setLatency({ seconds: Number(env.LATENCY_SECONDS) });
  }
  if (!env.CLOUDFLARE_ACCOUNT_ID || !env.CLOUDFLARE_API_TOKEN) return placeholder;
  rest ??= createRestAI(env.CLOUDFLARE_ACCOUNT_ID, env.CLOUDFLARE_API_TOKEN);
  return rest;
}

// The control routes: "<METHOD> <path>" -> (backend, body) => the JSON answer.
const ROUTES = {
  "GET /ai": (ai) => ai.stats(),
  "POST /ai/fail": (ai, body) => (ai.failNext(body), {}),
  "POST /ai/latency": (ai, body) => (ai.setLatency(body), {}),
  "POST /ai/realistic": (ai, body) => (ai.setRealistic(body), {}),
  // Llama Guard: script unsafe words, failures, the text form.
  "GET /guard": (ai) => ai.guard.stats(),
  "POST /guard": (ai, body) => (ai.guard.script(body), {}),
  // Scout (the output classifier): script verdicts, failures, the answer's form; read the
  // calls and the images it saw (format, size, sha256).
  "GET /scout": (ai) => ai.scout.stats(),
  "POST /scout": (ai, body) => (ai.scout.script(body), {}),
  "POST /reset": (ai) => (ai.reset(), {}),
};

async function jsonBody(request) {
  const text = await request.text();
  if (!text) return {};
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw badBody("the body is not JSON");
  }
  if (!isPlainObject(body)) throw badBody("the body must be a JSON object");
  return body;
}

export default class AI extends WorkerEntrypoint {
  async run(model, inputs, options) {
    checkRunOptions(options);
    return backend(this.env).run(model, inputs);
  }

  async models(params) {
    return backend(this.env).models(params);
  }

  async fetch(request) {
    const route = ROUTES[`${request.method} ${new URL(request.url).pathname}`];
    try {
      if (!route) throw controlError(404, "no such control route");
      return Response.json(await route(backend(this.env), await jsonBody(request)));
    } catch (err) {
      return Response.json({ error: String(err?.message ?? err) }, { status: err?.status ?? 500 });
    }
  }
}
