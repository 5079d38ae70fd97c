// The local overlay of wrangler.toml: the project's own configuration, unchanged, except that
// the AI binding (remote-only: wrangler cannot run Workers AI locally) becomes a service
// binding to the stand-in Worker of ./ai.mjs. Written next to wrangler.toml, because wrangler
// finds `main` and python_modules/ relative to the configuration file.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { parse, stringify } from "smol-toml";

export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const STANDIN = "fluxgate-ai-standin";
export const STANDIN_CONFIG = join(ROOT, "worker", "local", "ai.toml");

// `without`: top-level tables left out, as a deployment without those bindings
// (["images"]: no Images binding). `ratelimits`: {BINDING: {limit, period}}, each replacing
// or adding a [[ratelimits]] binding, as a deployer sizes one per policy rule. Returns the
// path of the file written: wrangler.local.toml, or for a variant a name of its own
// (servers running side by side must not rewrite each other's configuration, which
// `wrangler dev` watches); written atomically, as parallel processes write the same files.
export function writeOverlay({ without = [], ratelimits = {} } = {}) {
  const differs = JSON.stringify([[...without].sort(), Object.entries(ratelimits).sort()]);
  const variant = differs === "[[],[]]" ? "" : `.${createHash("sha256").update(differs).digest("hex").slice(0, 8)}`;
  const name = `wrangler.local${variant}.toml`;
  const config = parse(readFileSync(join(ROOT, "wrangler.toml"), "utf8"));
  if (config.ai?.binding !== "AI") throw new Error('wrangler.toml has no [ai] binding = "AI"');
  delete config.ai;
  config.services = [...(config.services ?? []), { binding: "AI", service: STANDIN }];
  for (const table of without) {
    if (!(table in config)) throw new Error(`wrangler.toml has no [${table}] to leave out`);
    delete config[table];
  }
  const declared = config.ratelimits ?? [];
  for (const [binding, { limit, period }] of Object.entries(ratelimits)) {
    const existing = declared.find((rule) => rule.name === binding);
    const simple = { limit: Number(limit), period: Number(period) };
    if (existing) existing.simple = simple;
    else declared.push({ name: binding, namespace_id: String(1900 + declared.length), simple });
  }
  config.ratelimits = declared;
  const path = join(ROOT, name);
  const header = "# Written by worker/local/overlay.mjs from wrangler.toml (AI -> the local stand-in). Do not edit.\n";
  const text = header + stringify(config) + "\n";
  // Unchanged, it is left alone: `wrangler dev` watches it and would reload every server.
  if (existsSync(path) && readFileSync(path, "utf8") === text) return path;
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, text);
  renameSync(temporary, path);
  return path;
}

// `--ratelimit BINDING=LIMIT/PERIOD` values as writeOverlay's `ratelimits`.
export function parseRatelimits(rules) {
  const ratelimits = {};
  for (const rule of rules) {
    const match = /^(RATE_LIMIT_[A-Z0-9_]+)=(\d+)\/(\d+)$/.exec(rule);
    if (!match) throw new Error(`--ratelimit ${rule}: expected RATE_LIMIT_NAME=LIMIT/PERIOD`);
    ratelimits[match[1]] = { limit: Number(match[2]), period: Number(match[3]) };
  }
  return ratelimits;
}
