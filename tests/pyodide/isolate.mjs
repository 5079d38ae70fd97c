// One Pyodide "isolate" for the unit harnesses of tests/pyodide/ (not the Worker: that runs
// on workerd): the Pyodide of the Python Workers runtime the Worker deploys to (the npm
// package `pyodide` package.json pins, from which scripts/prepare_workerd.py also builds
// workerd's Python bundle), the wheels pinned in worker/requirements.lock as its
// python_modules, src/ as its module root, and the runtime modules workerd provides
// (src/pyodide/python-entrypoint-helper.ts in workerd) restated, so that the Workers SDK
// behaves in it as it does on workerd. The cases call handlers through
// ./shims/_workerd_dispatch.py, workerd's dispatch (internal/introspection.py) restated.
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
// at once to `adopt` (the harness keeps it, as workerd extends the request's lifetime); the
// SDK recognises the class by its toStringTag.
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
      throw new Error(`No such module "${name}" in the Pyodide harness`);
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
  // The module root, then python_modules, ahead of site-packages. Not workerd's order
  // (there the standard library and python_modules come before the module root; the
  // startup tests check it on workerd): no module of src/ shadows another, so the order
  // does not change what is imported here. .pth files in python_modules are processed only
  // under python_process_pth_files. The harness's shims (workerd's internal _cloudflare
  // package, the dispatch) come last.
  py.runPython(`
import site, sys
sys.path[:0] = ["/session/metadata", "${vendor}"]
sys.path.append("/session/shims")
if ${flags.python_process_pth_files ? "True" : "False"}:
    site.addsitedir("${vendor}")
`);
  return py;
}
