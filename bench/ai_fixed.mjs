// The benchmark's AI stand-in: the Workers AI binding at (almost) no cost, so that a miss
// measures the gateway rather than the model. Bound to the Worker as `AI` under the name
// the local overlay binds (worker/local/overlay.mjs), in place of worker/local/ai.mjs, whose
// multipart parsing, checks and PNG encoding per call would be counted in the same workerd
// process as the Worker's own CPU.
//
// `run` drains the multipart body unparsed and answers one of a few images made once, on
// the first call (workerd refuses randomness while a Worker starts): noisy 1024x768 PNGs of
// about 1.2 MB, what FLUX.2 returns for that size, as the binding's base64 `image`. What is
// left (the RPC call, the body's bytes, the 1.6 MB string handed back) is measured alone
// from JS by bench/floors/io.mjs, so that it can be told apart from the Worker's own work.
import { WorkerEntrypoint } from "cloudflare:workers";
import { noisyPng } from "../worker/local/png.mjs";

const MODELS = ["@cf/black-forest-labs/flux-2-dev", "@cf/black-forest-labs/flux-2-klein-4b", "@cf/black-forest-labs/flux-2-klein-9b"];
const COUNT = 4;
let images = null;
let calls = 0;

export default class FixedAI extends WorkerEntrypoint {
  async run(model, inputs) {
    if (!MODELS.includes(model)) throw new Error(`5007: No such model ${model}`);
    await new Response(inputs.multipart.body).arrayBuffer();
    images ??= Array.from({ length: COUNT }, () => noisyPng(1024, 768).toString("base64"));
    return { image: images[calls++ % COUNT] };
  }

  async models() {
    return MODELS.map((name) => ({ name }));
  }

  async fetch() {
    return Response.json({ calls, image_bytes: images ? Math.floor((images[0].length * 3) / 4) : null });
  }
}
