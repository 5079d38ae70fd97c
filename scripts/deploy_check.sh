#!/usr/bin/env bash
# Deploy readiness, checked offline: what `npm run deploy` would upload, without uploading.
#
#   bash scripts/deploy_check.sh [OUTDIR]      (default: a fresh temporary folder)
#
# 1. vendors python_modules/ from worker/requirements.lock (scripts/vendor_worker.py);
# 2. runs `wrangler deploy --dry-run --outdir OUTDIR` on the Node pinned in package.json
#    (node_modules/node/bin/node: wrangler needs Node >= 22.12, whatever Node runs npm);
# 3. checks the dry run lists every binding (KV, R2, AI, Durable Objects, queue, rate limits)
#    and reads the console's static assets (console/, wrangler.toml's [assets]);
# 4. checks OUTDIR holds the Python Worker as wrangler uploads it: src/ as modules next to
#    entry.py, and python_modules/ with exactly the locked packages (one .dist-info each),
#    FastAPI, pydantic, pydantic_core's WebAssembly .so and the workers SDK with its .pth;
# 5. reports the upload size compressed (gzip), as wrangler reports it and recomputed here,
#    against Workers' limits: 3 MiB on Free (warning only), 10 MiB on Paid (failure).
# Needs `npm ci` first and python3; the wheels come from .cache/worker-wheels or PyPI.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
NODE="$ROOT/node_modules/node/bin/node"
WRANGLER="$ROOT/node_modules/wrangler/bin/wrangler.js"
FREE_LIMIT_MIB=3
PAID_LIMIT_MIB=10

fail() { echo "deploy check FAILED: $*" >&2; exit 1; }

[ -x "$NODE" ] || fail "no pinned Node at node_modules/node/bin/node (run \`npm ci\`)"
[ -f "$WRANGLER" ] || fail "no wrangler in node_modules (run \`npm ci\`)"
node_version="$("$NODE" --version)"
wrangler_version="$("$NODE" -p "require('$ROOT/node_modules/wrangler/package.json').version")"
# wrangler's own minimum Node, and pywrangler's (workers-py) minimum wrangler.
"$NODE" -e '
  const ge = (v, min) => {
    const p = v.replace(/^v/, "").split(".").map(Number);
    for (let i = 0; i < 3; i++) if (p[i] !== min[i]) return p[i] > min[i];
    return true;
  };
  let ok = true;
  if (!ge(process.version, [22, 12, 0])) {
    console.error(`pinned Node ${process.version} is older than 22.12.0`);
    ok = false;
  }
  if (!ge(process.argv[1], [4, 109, 0])) {
    console.error(`wrangler ${process.argv[1]} is older than 4.109.0`);
    ok = false;
  }
  process.exit(ok ? 0 : 1);
' "$wrangler_version" || fail "toolchain too old"
echo "== toolchain: wrangler $wrangler_version on pinned Node $node_version"

echo "== vendor python_modules from worker/requirements.lock"
"$PYTHON" scripts/vendor_worker.py || fail "vendoring python_modules failed"

out="${1:-}"
if [ -z "$out" ]; then
  out="$(mktemp -d)/dry-run"
elif [ -e "$out" ]; then
  # Only ever clear a previous dry run's output (wrangler writes a README.md saying so).
  if [ -n "$(ls -A "$out")" ] && ! grep -qs "built output assets" "$out/README.md"; then
    fail "$out exists and is not a wrangler dry-run output folder; refusing to clear it"
  fi
  rm -rf "$out"
fi
mkdir -p "$(dirname "$out")"
log="$out.log"

echo "== wrangler deploy --dry-run --outdir $out"
set +e
WRANGLER_SEND_METRICS=false NO_COLOR=1 FORCE_COLOR=0 \
  "$NODE" "$WRANGLER" deploy --dry-run --outdir "$out" >"$log" 2>&1
status=$?
set -e
# The module table lists every vendored file; show the rest.
grep -v -E '^[│├┌└]' "$log" | sed '/^$/d' || true
[ "$status" = 0 ] || fail "wrangler deploy --dry-run exited $status (full log: $log)"

echo "== bindings"
missing=()
check_binding() {  # NAME TYPE: wrangler prints "env.NAME (resource)   Type"
  if grep -qE "^env\.$1( |\().*$2 *$" "$log"; then echo "ok   env.$1 ($2)"; else
    echo "MISSING env.$1 ($2)"; missing+=("$1"); fi
}
check_binding KV "KV Namespace"
check_binding IMAGES "R2 Bucket"
check_binding AI "AI"
check_binding BUDGETS "Durable Object"
check_binding COALESCER "Durable Object"
check_binding JOBS "Durable Object"
check_binding CATALOG "Durable Object"
check_binding IDEMPOTENCY "Durable Object"
check_binding PROVENANCE "Durable Object"
check_binding JOB_QUEUE "Queue"
check_binding USAGE_EVENTS "Analytics Engine Dataset"
check_binding IMAGE_TRANSFORMS "Images"
ratelimits="$("$PYTHON" -c 'import tomllib
config = tomllib.load(open("wrangler.toml", "rb"))
print(" ".join(rule["name"] for rule in config.get("ratelimits", [])))')"
[ -n "$ratelimits" ] || missing+=("a [[ratelimits]] binding in wrangler.toml")
for name in $ratelimits; do check_binding "$name" "Rate Limit"; done
((${#missing[@]} == 0)) || fail "dry run does not list: ${missing[*]}"
bindings=$((11 + $(wc -w <<<"$ratelimits")))

echo "== static assets (the console)"
# wrangler prints "Read N files from the assets directory DIR"; the console's five files and
# its _headers and _redirects (parsed, not served) at least.
assets="$(grep -oE "Read [0-9]+ files? from the assets directory .*" "$log" || true)"
[ -n "$assets" ] || fail "the dry run read no assets directory (wrangler.toml [assets])"
[[ "$assets" == *" $ROOT/console" ]] || fail "assets from elsewhere than console/: $assets"
(( $(awk '{print $2}' <<<"$assets") >= 7 )) || fail "console/ is incomplete: $assets"
echo "ok   $assets"

echo "== bundle contents and size"
size_file="$(mktemp)"
trap 'rm -f "$size_file"' EXIT
args=("$out" "$log" "$FREE_LIMIT_MIB" "$PAID_LIMIT_MIB" "$size_file")
"$PYTHON" - "${args[@]}" <<'PY' || fail "bundle check (see above)"
import gzip
import re
import sys
from pathlib import Path

out, log = Path(sys.argv[1]), Path(sys.argv[2]).read_text()
free_mib, paid_mib = float(sys.argv[3]), float(sys.argv[4])
vendored = out / "python_modules"
problems = []


def canonical(name):
    return re.sub(r"[-_.]+", "_", name).lower()


# src/ is uploaded as Python modules beside the entry point.
for rel in ("entry.py", "fluxgate/edge/front/worker.py", "fluxgate/edge/front/serve.py"):
    if not (out / rel).is_file():
        problems.append(f"{rel} not in the bundle")

# Exactly the locked packages, one .dist-info each.
locked = {}
for line in Path("worker/requirements.lock").read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
        name, version = line.split()[0].split("==")
        locked[canonical(name)] = version
bundled = {}
for info in vendored.glob("*.dist-info") if vendored.is_dir() else ():
    name, _, version = info.name[: -len(".dist-info")].rpartition("-")
    bundled[canonical(name)] = version
if bundled != locked:
    missing = sorted(f"{n}=={v}" for n, v in locked.items() if bundled.get(n) != v)
    extra = sorted(f"{n}=={v}" for n, v in bundled.items() if locked.get(n) != v)
    problems.append(f"python_modules differs from the lock: missing {missing}, extra {extra}")

# The packages the Worker imports, as wrangler emitted them.
for rel in (
    "fastapi/__init__.py",
    "starlette/__init__.py",
    "pydantic/__init__.py",
    "pydantic_core/__init__.py",
    "multipart/__init__.py",
    "workers/__init__.py",  # the SDK: the runtime no longer provides `workers`
    "asgi.py",
    "_workers_sdk_patch_loader.pth",
):
    if not (vendored / rel).is_file():
        problems.append(f"python_modules/{rel} not in the bundle")
so = sorted(vendored.glob("pydantic_core/_pydantic_core.cpython-314-wasm32-emscripten.so"))
if not so:
    problems.append("pydantic_core's cpython-314 wasm32 .so not in the bundle")
elif so[0].read_bytes()[:4] != b"\0asm":
    problems.append(f"{so[0].name} is not WebAssembly")
pyc = [p for p in out.rglob("*.pyc")]
# The console is static assets, uploaded beside the Worker, never a module of it.
for name in ("index.html", "console.js", "console.css"):
    if any("python_modules" not in p.parts for p in out.rglob(name)):
        problems.append(f"{name} is in the Worker bundle (the console is [assets] only)")
if pyc:
    problems.append(f"{len(pyc)} .pyc files in the bundle (e.g. {pyc[0].relative_to(out)})")

# Size: what wrangler reports (gzip of all modules concatenated), and the same recomputed
# from OUTDIR (everything but wrangler's README.md), in case the report format changes.
files = sorted(p for p in out.rglob("*") if p.is_file() and p != out / "README.md")
raw = b"".join(p.read_bytes() for p in files)
own_gzip = len(gzip.compress(raw, compresslevel=6))
reported = re.search(r"Total Upload: ([\d.]+) KiB / gzip: ([\d.]+) KiB", log)
mib = 1024 * 1024
vendored_files = sum(1 for p in files if "python_modules" in p.parts)
print(f"modules: {len(files)} files ({vendored_files} vendored)")
print(f"uncompressed: {len(raw) / mib:.2f} MiB")
if reported:
    print(f"gzip (wrangler's report): {float(reported[2]) / 1024:.2f} MiB")
else:
    print("gzip (wrangler's report): not found in the dry-run output")
print(f"gzip (recomputed):        {own_gzip / mib:.2f} MiB")
size = max(own_gzip, float(reported[2]) * 1024 if reported else 0) / mib
print(f"Workers limits (compressed): Free {free_mib:g} MiB, Paid {paid_mib:g} MiB")
if size > paid_mib:
    problems.append(f"compressed size {size:.2f} MiB is over the Paid plan's {paid_mib:g} MiB")
elif size > free_mib:
    print(f"WARNING: {size:.2f} MiB compressed is over the Free plan's {free_mib:g} MiB: "
          "deploying needs Workers Paid")
for problem in problems:
    print(f"PROBLEM: {problem}")
Path(sys.argv[5]).write_text(f"{size:.2f}\n")
sys.exit(1 if problems else 0)
PY
size="$(cat "$size_file")"
[ -n "$size" ] || fail "bundle check reported no size"
free="ok"
if awk -v s="$size" -v l="$FREE_LIMIT_MIB" 'BEGIN { exit !(s > l) }'; then
  free="over (Paid plan needed)"
fi
echo "deploy check passed: wrangler $wrangler_version on Node $node_version, $bindings bindings," \
  "$(grep -c '==' worker/requirements.lock) locked packages bundled, ${size} MiB gzip" \
  "(Free ${FREE_LIMIT_MIB} MiB: $free; Paid ${PAID_LIMIT_MIB} MiB: ok); output in $out"
