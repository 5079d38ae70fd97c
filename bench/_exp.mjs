import { createTestHarness } from "wrangler";
import { readFileSync } from "node:fs";
import { parse } from "smol-toml";
const ROOT = "/work/main";
const base = parse(readFileSync(ROOT + "/wrangler.toml", "utf8"));
const server = createTestHarness({
  root: ROOT,
  workers: [
    { config: { name: "bench-js-floor", main: "bench/floors/js.mjs", compatibility_date: base.compatibility_date } },
    { config: { name: "bench-py-floor", main: "bench/floors/fastapi/entry.py", compatibility_date: base.compatibility_date, compatibility_flags: base.compatibility_flags, routes: [{ pattern: "py-floor.bench/*", zone_name: "bench" }] } },
  ],
});
const t0 = Date.now();
const { url } = await server.listen();
console.log(JSON.stringify({ event: "ready", url: url.href, pid: process.pid, ms: Date.now() - t0 }));
process.on("SIGTERM", async () => { await server.close(); process.exit(0); });
