// `npm run worker`: the Worker as deployed, on real workerd, offline: `wrangler dev --local`
// on the project's wrangler.toml (through the local overlay: AI -> the stand-in of ./ai.mjs)
// and the workerd that scripts/prepare_workerd.py prepares. Options after `--` go to
// `wrangler dev` (`npm run worker -- --port 8788 --var CACHE_SCOPE:global`), except
// `--ratelimit RATE_LIMIT_STANDARD=1000/60`, which resizes a rate-limit binding.
//
// Secrets: ADMIN_TOKEN and URL_SIGNING_KEYS from the environment when either is set, else
// wrangler's own `.dev.vars` when there is one; without URL_SIGNING_KEYS, one generated once
// and kept in .wrangler/fluxgate/ (0600). C2PA_SIGNING_KEY and C2PA_CERTIFICATE_CHAIN (PEM) are
// passed on from the environment too: without them images are stored without Content
// Credentials (the Worker warns at start and on /readyz). With CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN set,
// the stand-in calls the Workers AI REST API (real models) instead of drawing placeholders.
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, STANDIN_CONFIG, parseRatelimits, writeOverlay } from "./overlay.mjs";

const STATE = join(ROOT, ".wrangler", "fluxgate");
mkdirSync(STATE, { recursive: true, mode: 0o700 });

const python = process.env.PYTHON ?? "python3";
const run = (script, ...options) => execFileSync(python, [join(ROOT, "scripts", script), ...options], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
run("vendor_worker.py", "--if-changed");
const workerd = run("prepare_workerd.py");
// `--ratelimit BINDING=LIMIT/PERIOD` (ours, repeatable) sizes a rate-limit binding; every
// other option goes to `wrangler dev`.
const extra = [];
const rules = [];
for (let at = 2; at < process.argv.length; at++) {
  if (process.argv[at] === "--ratelimit") rules.push(process.argv[++at]);
  else extra.push(process.argv[at]);
}
const config = writeOverlay({ ratelimits: parseRatelimits(rules) });

// A file of NAME=VALUE lines only this user can read (also when it existed before); a value of
// several lines (a PEM) double-quoted, its line breaks as \n (dotenv expands them).
const written = [];
const secretFile = (path, values, { keep = false } = {}) => {
  const line = ([name, value]) => `${name}=${value.includes("\n") ? JSON.stringify(value) : value}\n`;
  const text = Object.entries(values).map(line).join("");
  writeFileSync(path, text, { mode: 0o600 });
  chmodSync(path, 0o600);
  if (!keep) written.push(path);
  return path;
};
// Secrets files (and stand-in folders) of servers that did not get to remove theirs (killed
// outright).
for (const name of readdirSync(STATE)) {
  const pid = /^(?:secrets-(\d+)\.env|standin-(\d+))$/.exec(name)?.slice(1).find(Boolean);
  if (pid && !isRunning(Number(pid))) rmSync(join(STATE, name), { force: true, recursive: true });
}
function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

// Secrets from the environment win (the tests pass theirs so); else wrangler's .dev.vars.
const args = ["dev", "-c", config];
const fromEnvironment = process.env.ADMIN_TOKEN || process.env.URL_SIGNING_KEYS;
if (fromEnvironment || !existsSync(join(ROOT, ".dev.vars"))) {
  const keys = join(STATE, "url-signing-keys");
  if (!process.env.URL_SIGNING_KEYS && !existsSync(keys)) secretFile(keys, { URL_SIGNING_KEYS: `dev=${randomBytes(32).toString("base64url")}` }, { keep: true });
  const generated = existsSync(keys) ? readFileSync(keys, "utf8").trim().split("=").slice(1).join("=") : undefined;
  const secrets = { URL_SIGNING_KEYS: process.env.URL_SIGNING_KEYS ?? generated };
  for (const name of ["ADMIN_TOKEN", "C2PA_SIGNING_KEY", "C2PA_CERTIFICATE_CHAIN"]) if (process.env[name]) secrets[name] = process.env[name];
  // One file per process: parallel servers (the tests') each have their own secrets.
  args.push("--env-file", secretFile(join(STATE, `secrets-${process.pid}.env`), secrets));
}

// The stand-in, from its own folder unless it gets REST credentials or a latency: then a
// copy of its config (with the latency as a var) next to a .dev.vars holding the
// credentials, in a folder of this process's own in .wrangler/fluxgate/.
let standin = STANDIN_CONFIG;
const { CLOUDFLARE_ACCOUNT_ID: account, CLOUDFLARE_API_TOKEN: token } = process.env;
const latency = process.env.FLUXGATE_PLACEHOLDER_LATENCY_SECONDS;
if ((account && token) || latency) {
  const folder = join(STATE, `standin-${process.pid}`);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  written.push(folder);
  const main = join(ROOT, "worker", "local", "ai.mjs");
  standin = join(folder, "wrangler.toml");
  let config = readFileSync(STANDIN_CONFIG, "utf8").replace(/^main = .*$/m, `main = ${JSON.stringify(main)}`);
  if (latency) config += `\n[vars]\nLATENCY_SECONDS = ${JSON.stringify(latency)}\n`;
  writeFileSync(standin, config);
  if (account && token) secretFile(join(folder, ".dev.vars"), { CLOUDFLARE_ACCOUNT_ID: account, CLOUDFLARE_API_TOKEN: token });
}
// Defaults the caller's own options (after `--`) may replace.
const given = (option) => extra.some((arg) => arg === option || arg.startsWith(`${option}=`));
args.push("-c", standin, "--local", "--ip", "127.0.0.1");
if (!given("--port")) args.push("--port", "8787");
if (!given("--persist-to")) args.push("--persist-to", join(ROOT, ".wrangler", "state"));
args.push(...extra);

const env = { ...process.env, MINIFLARE_WORKERD_PATH: workerd, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" };
for (const name of ["ADMIN_TOKEN", "URL_SIGNING_KEYS", "C2PA_SIGNING_KEY", "C2PA_CERTIFICATE_CHAIN", "CLOUDFLARE_API_TOKEN", "CLOUDFLARE_ACCOUNT_ID"]) delete env[name];
const wrangler = spawn(process.execPath, [join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"), ...args], { cwd: ROOT, env, stdio: "inherit" });
// The secrets written for this run (the API token among them) go when it ends, however.
const forget = () => written.forEach((path) => rmSync(path, { force: true, recursive: true }));
process.on("exit", forget);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => wrangler.kill(signal));
wrangler.on("error", (error) => {
  console.error(`wrangler did not start: ${error.message}`);
  process.exit(1);
});
wrangler.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
