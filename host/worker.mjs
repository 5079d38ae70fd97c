// Loads the Worker as deployed into one Pyodide "isolate": Pyodide 314 (the Python 3.14
// Workers runtime, compatibility flag python_workers_20260610), the wheels pinned in
// worker/requirements.lock as its python_modules, and src/ as its module root. Then calls
// its handlers the way workerd does (src/pyodide/python-entrypoint-helper.ts and
// internal/introspection.py in workerd).
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadPyodide } from "pyodide";

const SHIMS = fileURLToPath(new URL("./shims/", import.meta.url));

// Python-relevant compatibility flags that a compatibility date turns on by itself
// (workerd src/workerd/io/compatibility-date.capnp, $compatEnableDate). Flags implied by
// `python_workers` after a date count as on for any current date.
const DATED_FLAGS = {
  python_no_global_handlers: "2025-08-14",
  python_workers_force_new_vendor_path: "2025-08-11",
  python_request_headers_preserve_commas: "2026-02-17",
  enable_python_external_sdk: "2026-04-21",
  python_process_pth_files: "2026-05-26",
};
const IMPLIED_BY_PYTHON_WORKERS = ["python_workflows", "python_check_rng_state", "python_workflows_implicit_dependencies"];

// What _cloudflare_compat_flags holds: every flag name the SDK may read, as a boolean.
export function compatibilityFlags(date, explicit) {
  const flags = Object.create(null);
  for (const [name, since] of Object.entries(DATED_FLAGS)) flags[name] = date >= since;
  for (const name of IMPLIED_BY_PYTHON_WORKERS) flags[name] = explicit.includes("python_workers");
  for (const name of explicit) flags[name] = true;
  return Object.freeze(flags);
}

function lockedWheels(root, wheelDir) {
  const lock = readFileSync(join(root, "worker", "requirements.lock"), "utf8");
  const pinned = lock
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => line.split(" ")[0].split("=="));
  const files = existsSync(wheelDir) ? readdirSync(wheelDir).filter((f) => f.endsWith(".whl")) : [];
  return pinned.map(([name, version]) => {
    const stem = name.replace(/-/g, "_");
    const file = files.find((f) => f.toLowerCase().startsWith(`${stem}-${version}-`));
    if (!file) throw new Error(`${name}==${version} is not in ${wheelDir}: run python3 scripts/worker_wheels.py`);
    return join(wheelDir, file);
  });
}

// ExecutionContext as workerd gives it to a class entrypoint: `waitUntil` hands the promise
// to the host at once (`adopt`); the SDK recognises the class by its toStringTag.
export class ExecutionContext {
  #adopt;
  constructor(adopt) {
    this.#adopt = adopt;
    this.props = {};
  }
  get [Symbol.toStringTag]() {
    return "ExecutionContext";
  }
  waitUntil(promise) {
    if (!promise || typeof promise.then !== "function") throw new TypeError("waitUntil expects a Promise");
    this.#adopt(promise);
  }
  passThroughOnException() {}
}

// workerd's patchWaitUntil (python-entrypoint-helper.ts): a Python awaitable handed to
// ctx.waitUntil is copied, so that it outlives the FFI call, and destroyed once settled.
const patched = new WeakSet();
function patchWaitUntil(ctx) {
  if (Object.prototype.toString.call(ctx) !== "[object ExecutionContext]" || patched.has(ctx)) return;
  patched.add(ctx);
  const original = ctx.waitUntil.bind(ctx);
  ctx.waitUntil = (p) =>
    original(
      (async () => {
        if (p && typeof p === "object" && "copy" in p) p = p.copy();
        try {
          await p;
        } finally {
          if (p && typeof p === "object" && "destroy" in p) p.destroy();
        }
      })(),
    );
}

// Loads Pyodide, the locked wheels (as python_modules) and src/ (as /session/metadata).
// `env` and `waitUntil` back `cloudflare:workers` (the module-level env and waitUntil).
export async function loadIsolate({ root, wheelDir, compatibilityDate, compatFlags = [], env = {}, waitUntil, log = console }) {
  const py = await loadPyodide({
    stdout: (line) => log.log(line),
    stderr: (line) => log.error(line),
  });
  const flags = compatibilityFlags(compatibilityDate ?? "2000-01-01", compatFlags);
  py.registerJsModule("_cloudflare_compat_flags", flags);
  py.registerJsModule("_pyodide_entrypoint_helper", {
    doAnImport: async (name) => {
      throw new Error(`No such module "${name}" in the Worker host`);
    },
    cloudflareWorkersModule: { env, waitUntil },
    cloudflareSocketsModule: null,
    patchWaitUntil,
  });
  const vendor = "/session/python_modules";
  py.FS.mkdirTree(vendor);
  for (const wheel of lockedWheels(root, wheelDir)) {
    py.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: vendor });
  }
  for (const [target, source] of [
    ["/session/metadata", join(root, "src")],
    ["/session/shims", SHIMS],
  ]) {
    py.FS.mkdirTree(target);
    py.mountNodeFS(target, realpathSync(source));
  }
  // workerd: the module root, then python_modules ahead of site-packages; .pth files in
  // python_modules are processed only under python_process_pth_files. The host's shims
  // (workerd's internal _cloudflare package, the dispatch) come last.
  py.runPython(`
import site, sys
sys.path[:0] = ["/session/metadata", "${vendor}"]
sys.path.append("/session/shims")
if ${flags.python_process_pth_files ? "True" : "False"}:
    site.addsitedir("${vendor}")
`);
  return py;
}

// The Worker's entry module, imported once per isolate (workerd: at deploy time, into the
// memory snapshot), and the handler dispatch.
export function importEntry(py) {
  const module = py.pyimport("entry");
  // workerd ends the import-patching phase before the first request.
  py.runPython(`
import sys
if "_cloudflare.import_patch_manager" in sys.modules:
    sys.modules["_cloudflare.import_patch_manager"].before_first_request()
`);
  return { module, dispatch: py.pyimport("_host_dispatch").call };
}

// A handler's result back to JS: PyProxies are copied out and released.
function release(result) {
  if (result && typeof result === "object" && typeof result.toJs === "function") {
    const value = result.toJs({ dict_converter: Object.fromEntries });
    result.destroy();
    return value;
  }
  return result;
}

// workerd builds a new instance of the entrypoint class for every event, Cls(ctx, env),
// and calls `fetch(request, env, ctx)` relaxed with env and ctx undefined.
export async function callFetch(entry, request, env, ctx) {
  const instance = entry.module.Default(ctx, env);
  try {
    const response = release(await entry.dispatch(instance, "fetch", request, undefined, undefined));
    if (!(response instanceof Response)) throw new TypeError(`fetch handler returned ${response}, not a Response`);
    return response;
  } finally {
    instance.destroy();
  }
}

// `queue(batch, env, ctx)` strictly, env and ctx undefined for a class entrypoint.
export async function callQueue(entry, batch, env, ctx) {
  const instance = entry.module.Default(ctx, env);
  try {
    release(await entry.dispatch(instance, "queue", batch, undefined, undefined));
  } finally {
    instance.destroy();
  }
}
