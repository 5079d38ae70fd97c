// The Pyodide unit harness of variants: runs the Workers side (src/fluxgate/edge/bindings/images_binding.py)
// in the Python Workers runtime's interpreter (Pyodide and the locked wheels, loaded by
// `loadIsolate`, ./isolate.mjs) against the double of the Cloudflare Images binding
// (./images_double.mjs), bound under the name wrangler.toml gives it. The cases are
// tests/pyodide/images_cases.py.
//
//   node tests/pyodide/images_harness.mjs [--wheels .cache/worker-wheels] [--config wrangler.toml]
//
// Prints one JSON line per case ({"case", "ok", "seconds", "detail", "artifacts"}): the
// artifacts (encoded variants, base64) are decoded by tests/edge/test_images_binding.py with
// Pillow. Exits 1 if a case failed, 2 if the harness could not start.
import { readFileSync, realpathSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { ImagesBindingImpl } from "./images_double.mjs";
import { ExecutionContext, loadIsolate } from "./isolate.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const { values: args } = parseArgs({
  options: {
    wheels: { type: "string", default: join(root, ".cache", "worker-wheels") },
    config: { type: "string", default: join(root, "wrangler.toml") },
  },
});

async function main() {
  const output = [];
  const log = { log: (line) => output.push(line), error: (line) => output.push(line) };
  const config = parseToml(readFileSync(args.config, "utf8"));
  const name = config.images?.binding;
  if (!name) throw new Error("wrangler.toml declares no [images] binding");
  const images = new ImagesBindingImpl();
  const env = { [name]: images };
  const py = await loadIsolate({
    root,
    wheelDir: resolve(args.wheels),
    compatibilityDate: config.compatibility_date,
    compatFlags: config.compatibility_flags ?? [],
    env,
    waitUntil: () => {},
    log,
  });
  py.FS.mkdirTree("/session/cases");
  py.mountNodeFS("/session/cases", realpathSync(here));
  py.runPython('import sys; sys.path.append("/session/cases")');
  py.registerJsModule("images_harness", { env, images, binding: name, ctx: new ExecutionContext(() => {}) });
  const results = JSON.parse(await py.runPythonAsync("import images_cases\nawait images_cases.run()"));
  for (const result of results) console.log(JSON.stringify(result));
  const failed = results.filter((r) => !r.ok).length;
  if (failed && output.length) console.error(output.join("\n"));
  console.log(`${results.length - failed} passed, ${failed} failed`);
  process.exitCode = failed ? 1 : 0;
}

main().catch((err) => {
  console.error("harness failed to start:", err?.stack ?? err);
  process.exitCode = 2;
});
