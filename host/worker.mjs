// Loads the Worker as deployed into one Pyodide "isolate": Pyodide 314 (the Python 3.14
// Workers runtime, compatibility flag python_workers_20260610), the wheels pinned in
// worker/requirements.lock, and src/ as the Worker's module root. Then exposes the handler
// calls the way workerd makes them (see callFetch / callQueue / durableObjectFactory).
import { existsSync, readFileSync, readdirSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { loadPyodide } from "pyodide";

// Runtime-provided modules the SDK imports; workerd injects its own versions of these.
const SHIMS = new URL("./shims/", import.meta.url);

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
    if (!file) {
      throw new Error(`${name}==${version} is not in ${wheelDir}: run python3 scripts/worker_wheels.py`);
    }
    return join(wheelDir, file);
  });
}

// Loads Pyodide with the locked wheels and src/; `compatFlags` are what
// _cloudflare_compat_flags reports (workerd: the Worker's compatibility flags).
export async function loadIsolate({ root, wheelDir, compatFlags = [], log = console }) {
  const py = await loadPyodide({
    stdout: (line) => log.log(line),
    stderr: (line) => log.error(line),
  });
  const sitePackages = py.runPython("import site; site.getsitepackages()[0]");
  for (const wheel of lockedWheels(root, wheelDir)) {
    py.unpackArchive(new Uint8Array(readFileSync(wheel)), "wheel", { extractDir: sitePackages });
  }
  for (const [target, source] of [
    ["/session/metadata", join(root, "src")],
    ["/session/shims", new URL(SHIMS).pathname],
  ]) {
    py.FS.mkdirTree(target);
    py.mountNodeFS(target, realpathSync(source));
  }
  py.registerJsModule("_fluxgate_host", { compatFlags: compatFlags.join(",") });
  // Runtime modules first, then the Worker's own root; site-packages is processed like a
  // site dir so that the SDK's .pth import hook runs as it does at workerd start-up.
  py.runPython(`
import site, sys
sys.path[:0] = ["/session/shims", "/session/metadata"]
site.addsitedir(${JSON.stringify(sitePackages)})
`);
  return py;
}

// The Worker's entry module, imported once per isolate (workerd: at deploy time, into the
// memory snapshot).
export function importEntry(py) {
  return py.pyimport("entry");
}

// workerd calls `fetch` of a WorkerEntrypoint class *relaxed*: a fresh instance per event,
// constructed as Cls(ctx, env), then `fetch(request)` with the Request wrapped by the SDK.
export async function callFetch(py, entry, request, env, ctx) {
  const instance = entry.Default(ctx, env);
  const wrapped = py.pyimport("workers").Request(request);
  try {
    const result = await instance.fetch(wrapped);
    return toJsResponse(result);
  } finally {
    wrapped.destroy();
    instance.destroy();
  }
}

// A handler may return a JS Response or the SDK's Response wrapper (workerd unwraps it).
function toJsResponse(result) {
  if (result instanceof Response) return result;
  const inner = result?.js_object;
  if (inner instanceof Response) {
    result.destroy?.();
    return inner;
  }
  throw new TypeError(`fetch handler returned ${result?.type ?? typeof result}, not a Response`);
}

// workerd calls the other handlers *strictly*, with every argument it has: for a class
// entrypoint `queue(batch, env, ctx)` where env and ctx are undefined (they are on self).
export async function callQueue(entry, batch, env, ctx) {
  const instance = entry.Default(ctx, env);
  try {
    await instance.queue(batch, undefined, undefined);
  } finally {
    instance.destroy();
  }
}
