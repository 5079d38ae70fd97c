"""The console's page, script, stylesheet and icons, as Python constants.

They are constants (not files) because the Worker bundle ships Python modules only. The
page has no inline script or style: ``console.CSP`` allows the script and the stylesheet
from the page's own origin and nothing inline. Everything is ASCII (HTML entities and JS
``\\u`` escapes for the rest) so that the text stays the same in every encoding.
"""

import base64

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Fluxgate console</title>
<link rel="icon" href="favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="console.css">
<script src="console.js" defer></script>
</head>
<body>
<header class="top">
  <h1><img src="favicon.svg" alt="" width="28" height="28"> Fluxgate console</h1>
  <p id="server" class="muted">Checking the server&hellip;</p>
</header>
<p id="placeholder-banner" class="banner hidden" role="status">
  <strong>Placeholder mode: images are offline placeholders, not FLUX.2.</strong>
  This server has no model credentials: it draws a picture from the parameters.</p>
<main>
<section class="card" aria-labelledby="generate-title">
  <h2 id="generate-title">Generate</h2>
  <form id="form">
    <div class="field">
      <label for="key">API key</label>
      <input id="key" type="password" autocomplete="off" spellcheck="false"
        placeholder="fgk_&hellip; or fgt_&hellip;" required>
      <p class="hint">Kept in this page's memory only: never stored, never in a URL.</p>
    </div>
    <div class="field">
      <label for="model">Model</label>
      <select id="model" aria-describedby="model-hint"></select>
      <p id="model-hint" class="hint"></p>
    </div>
    <div class="field">
      <label for="prompt">Prompt</label>
      <textarea id="prompt" rows="3" required placeholder="a paper crane on a desk"></textarea>
    </div>
    <div class="pair">
      <div class="field">
        <label for="width">Width</label>
        <input id="width" type="number" min="256" max="1920" step="16" value="1024">
      </div>
      <div class="field">
        <label for="height">Height</label>
        <input id="height" type="number" min="256" max="1920" step="16" value="768">
      </div>
      <div class="field">
        <label for="steps">Steps</label>
        <input id="steps" type="number" min="1" max="50" value="25">
      </div>
      <div class="field">
        <label for="seed">Seed</label>
        <input id="seed" type="number" min="0" placeholder="random">
      </div>
    </div>
    <div class="field">
      <label for="references">Reference images</label>
      <input id="references" type="file" accept="image/png,image/jpeg,image/webp" multiple>
      <p class="hint">Up to 4; PNG, JPEG or WebP; each side under 512 px; at most 1 MiB each.
        <button id="references-clear" class="link hidden" type="button">Remove all</button></p>
      <ul id="thumbs" class="thumbs"></ul>
      <p id="references-error" class="error hidden" role="alert"></p>
    </div>
    <div class="field">
      <label class="check"><input id="async" type="checkbox"> Asynchronous</label>
      <p class="hint">Sends Prefer: respond-async, then polls the job until it ends.</p>
    </div>
    <div class="actions">
      <button id="generate" class="primary" type="submit">Generate</button>
      <progress id="progress" class="hidden" aria-label="Generating"></progress>
      <span id="status" role="status" aria-live="polite"></span>
    </div>
  </form>
</section>

<section class="card" aria-labelledby="result-title">
  <h2 id="result-title">Result</h2>
  <p id="empty" class="muted">No image yet.</p>
  <div id="error" class="error-box hidden" role="alert">
    <p><strong id="error-code"></strong> <span id="error-status"></span></p>
    <p id="error-message"></p>
    <p id="error-request" class="hidden">Request id <code id="error-request-id"></code></p>
  </div>
  <div id="result" class="hidden">
    <img id="image" alt="The generated image">
    <div class="actions">
      <a id="download" class="button" download>Download</a>
      <button id="copy" type="button">Copy URL</button>
      <span id="copied" role="status"></span>
    </div>
    <input id="url" type="text" readonly aria-label="Signed URL of the image">
    <dl id="meta" class="meta">
      <dt>Id</dt><dd id="meta-id"></dd>
      <dt>Model</dt><dd id="meta-model"></dd>
      <dt>Cache</dt><dd id="meta-cache"></dd>
      <dt>Seed</dt><dd id="meta-seed"></dd>
      <dt>Size</dt><dd id="meta-size"></dd>
      <dt>Cost</dt><dd id="meta-cost"></dd>
      <dt>Image</dt><dd id="meta-type"></dd>
      <dt>References</dt><dd id="meta-references"></dd>
      <dt>URL expires</dt><dd id="meta-expires"></dd>
    </dl>
  </div>
</section>

<section class="card wide" aria-labelledby="admin-title">
  <h2 id="admin-title">Admin</h2>
  <form id="admin-form" class="inline">
    <div class="grow">
      <label for="admin-token">Admin token</label>
      <input id="admin-token" type="password" autocomplete="off" spellcheck="false"
        placeholder="ADMIN_TOKEN, or a key with the admin scope" required>
    </div>
    <button id="admin-load" type="submit">Load</button>
  </form>
  <p id="admin-error" class="error hidden" role="alert"></p>
  <div id="admin-body" class="hidden">
    <div id="new-key" class="notice hidden" role="status">
      <p><strong id="new-key-title"></strong> This is the only time it is shown: copy it now.</p>
      <input id="new-key-value" type="text" readonly aria-label="The new API key">
      <div class="actions">
        <button id="new-key-copy" type="button">Copy</button>
        <button id="new-key-use" type="button">Use for generating</button>
        <button id="new-key-dismiss" type="button">Dismiss</button>
        <span id="new-key-note" role="status"></span>
      </div>
    </div>

    <h3>Keys</h3>
    <form id="create-form" class="inline">
      <div class="grow">
        <label for="new-name">New key name</label>
        <input id="new-name" type="text" maxlength="100" required placeholder="laptop">
      </div>
      <button id="create" type="submit">Create key</button>
      <div>
        <label for="grace">Rotation grace (s)</label>
        <input id="grace" type="number" min="0" max="2592000" value="0">
      </div>
    </form>
    <table id="keys" class="cards">
      <thead><tr><th>Name</th><th>Id</th><th>Tier</th><th>Scopes</th><th>Created</th>
        <th>Status</th><th>Actions</th></tr></thead>
      <tbody id="keys-body"></tbody>
    </table>
    <p id="keys-note" class="muted"></p>

    <h3>Spend</h3>
    <div class="inline">
      <div class="grow">
        <label for="spend-key">Key</label>
        <select id="spend-key"><option value="">All keys</option></select>
      </div>
      <button id="spend-refresh" type="button">Refresh</button>
    </div>
    <p id="spend-error" class="error hidden" role="alert"></p>
    <div class="spend">
      <figure class="chart-box">
        <div id="chart" class="chart"></div>
        <figcaption id="chart-caption" class="muted"></figcaption>
        <ul id="legend" class="legend"></ul>
      </figure>
      <table id="today" class="cards">
        <caption>Today (UTC)</caption>
        <thead><tr><th>Key</th><th class="num">Requests</th><th class="num">Spent today</th>
          <th class="num">30 days</th></tr></thead>
        <tbody id="today-body"></tbody>
      </table>
    </div>

    <h3>Recent generations</h3>
    <div class="inline">
      <div class="grow">
        <label for="gallery-key">Key</label>
        <select id="gallery-key"></select>
      </div>
      <button id="gallery-refresh" type="button">Refresh</button>
    </div>
    <p id="gallery-error" class="error hidden" role="alert"></p>
    <p id="gallery-empty" class="muted hidden">No images from this key yet.</p>
    <ul id="gallery" class="gallery"></ul>
  </div>
</section>
</main>
<footer class="muted">Credentials stay in this page's memory: no storage, no cookie, no URL.
  <a href="openapi.json">API contract</a></footer>
</body>
</html>
"""

STYLES = """:root {
  color-scheme: light dark;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  --bg: #f5f6fa; --card: #ffffff; --fg: #1c2130; --muted: #5b6478; --line: #d8dce6;
  --accent: #4f46e5; --accent-fg: #ffffff; --error: #b42318; --error-bg: #fef3f2;
  --warn-bg: #fff4cc; --warn-fg: #5c4300; --ok: #067647; --field: #ffffff;
  --s0: #4f46e5; --s1: #0ea5e9; --s2: #f59e0b; --s3: #10b981;
  --s4: #ef4444; --s5: #a855f7; --s6: #64748b; --s7: #ec4899;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0f1117; --card: #181b24; --fg: #e7e9ef; --muted: #9aa3b6; --line: #2d3342;
    --accent: #8b85ff; --accent-fg: #0f1117; --error: #ff9c92; --error-bg: #2b1513;
    --warn-bg: #3a2f00; --warn-fg: #ffe08a; --ok: #5ee0a8; --field: #11141b;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.45; }
.top, main, footer { max-width: 1240px; margin-left: auto; margin-right: auto; }
.top { padding: 1rem 1rem .25rem; }
.top h1 { margin: 0; font-size: 1.5rem; display: flex; gap: .5rem; align-items: center; }
.top p { margin: .25rem 0 0; }
main { display: grid; gap: 1rem; padding: 1rem; grid-template-columns: minmax(0, 1fr); }
@media (min-width: 960px) {
  main { grid-template-columns: minmax(0, 5fr) minmax(0, 6fr); align-items: start; }
  .wide { grid-column: 1 / -1; }
}
footer { padding: 0 1rem 2rem; font-size: .9rem; }
h2 { margin: 0 0 .75rem; font-size: 1.2rem; }
h3 { margin: 1.5rem 0 .5rem; font-size: 1.05rem; }
a { color: var(--accent); }
.card {
  background: var(--card); border: 1px solid var(--line); border-radius: 12px;
  padding: 1rem; min-width: 0;
}
.muted, .hint { color: var(--muted); }
.hint { font-size: .85rem; margin: .3rem 0 0; }
.field { margin-bottom: .85rem; min-width: 0; }
label { display: block; font-weight: 600; margin-bottom: .25rem; }
label.check { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; font-weight: 500; }
input, textarea, select, button { font: inherit; color: inherit; max-width: 100%; }
input[type="text"], input[type="password"], input[type="number"], textarea, select {
  display: block; width: 100%; min-width: 0; padding: .45rem .6rem;
  border: 1px solid var(--line); border-radius: 8px; background: var(--field);
}
textarea { resize: vertical; }
input[type="file"] { display: block; width: 100%; }
input[type="checkbox"] { width: 1.1rem; height: 1.1rem; margin: 0; }
input:focus-visible, textarea:focus-visible, select:focus-visible, button:focus-visible,
a:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.pair { display: grid; gap: 0 .75rem; grid-template-columns: repeat(2, minmax(0, 1fr)); }
@media (min-width: 520px) { .pair { grid-template-columns: repeat(4, minmax(0, 1fr)); } }
button, .button {
  display: inline-block; padding: .45rem .9rem; border: 1px solid var(--line);
  border-radius: 8px; background: var(--card); cursor: pointer; text-decoration: none;
  color: var(--fg); line-height: 1.3;
}
button.primary { background: var(--accent); color: var(--accent-fg); border-color: transparent;
  font-weight: 600; padding: .55rem 1.3rem; }
button:disabled, input:disabled, select:disabled { opacity: .55; cursor: not-allowed; }
button.link { border: 0; padding: 0; background: none; color: var(--accent);
  text-decoration: underline; }
button.danger { color: var(--error); }
.actions { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin: .6rem 0; }
.inline { display: flex; flex-wrap: wrap; gap: .5rem .75rem; align-items: flex-end;
  margin-bottom: .75rem; }
.inline .grow { flex: 1 1 10rem; min-width: 0; }
progress { width: 8rem; max-width: 100%; }
.hidden { display: none !important; }
.banner {
  width: calc(100% - 2rem); max-width: calc(1240px - 2rem); margin: .5rem auto 0;
  padding: .7rem 1rem; border-radius: 10px; background: var(--warn-bg);
  color: var(--warn-fg); border: 1px solid currentColor;
}
.error { color: var(--error); font-weight: 600; margin: .4rem 0; overflow-wrap: anywhere; }
.error-box {
  background: var(--error-bg); color: var(--error); border: 1px solid currentColor;
  border-radius: 10px; padding: .6rem .9rem; margin-bottom: .75rem; overflow-wrap: anywhere;
}
.error-box p { margin: .2rem 0; }
.notice {
  background: var(--warn-bg); color: var(--warn-fg); border: 1px solid currentColor;
  border-radius: 10px; padding: .6rem .9rem; margin: .75rem 0;
}
.notice p { margin: .2rem 0 .5rem; }
code, .mono, .meta dd, #url, #new-key-value {
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  overflow-wrap: anywhere;
}
#url, #new-key-value { font-size: .85rem; }
#image {
  display: block; width: 100%; height: auto; border-radius: 10px;
  background: repeating-conic-gradient(#8882 0% 25%, transparent 0% 50%) 50% / 20px 20px;
}
.meta { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: .2rem .9rem;
  margin: .9rem 0 0; font-size: .9rem; }
.meta dt { color: var(--muted); }
.meta dd { margin: 0; min-width: 0; }
.thumbs { list-style: none; padding: 0; margin: .5rem 0 0; display: grid; gap: .5rem;
  grid-template-columns: repeat(auto-fill, minmax(6.5rem, 1fr)); }
.thumb { border: 1px solid var(--line); border-radius: 8px; padding: .3rem; font-size: .75rem;
  min-width: 0; overflow-wrap: anywhere; }
.thumb img { display: block; width: 100%; aspect-ratio: 1; object-fit: contain;
  background: #8881; border-radius: 4px; }
.thumb.bad { border-color: var(--error); }
.thumb .problem { color: var(--error); font-weight: 600; }
.thumb span { display: block; }
table { width: 100%; border-collapse: collapse; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line);
  vertical-align: top; overflow-wrap: anywhere; }
th { color: var(--muted); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;
  overflow-wrap: normal; }
td .actions { margin: 0; gap: .3rem; }
td button { padding: .2rem .55rem; font-size: .85rem; }
td code.id { display: block; font-size: .8em; color: var(--muted); }
.state-revoked { color: var(--error); font-weight: 600; }
.state-active { color: var(--ok); font-weight: 600; }
@media (max-width: 700px) {
  table.cards thead { display: none; }
  table.cards, table.cards tbody, table.cards tr, table.cards td, table.cards caption {
    display: block; width: 100%;
  }
  table.cards tr { border: 1px solid var(--line); border-radius: 10px; padding: .4rem .6rem;
    margin-bottom: .5rem; }
  table.cards td { display: grid; grid-template-columns: 6.5rem minmax(0, 1fr); gap: .5rem;
    border: 0; padding: .15rem 0; }
  table.cards td.num { text-align: left; }
  table.cards td::before { content: attr(data-label); color: var(--muted); font-weight: 600; }
}
.spend { display: grid; gap: 1rem; grid-template-columns: minmax(0, 1fr); align-items: start; }
@media (min-width: 960px) { .spend { grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); } }
.chart-box { margin: 0; min-width: 0; }
.chart svg { display: block; width: 100%; height: auto; }
.chart text { fill: var(--muted); font-size: 11px; }
.chart .grid { stroke: var(--line); stroke-width: 1; }
.chart .empty { font-size: 14px; }
.legend { list-style: none; padding: 0; margin: .4rem 0 0; display: flex; flex-wrap: wrap;
  gap: .3rem .9rem; font-size: .85rem; }
.legend li { display: flex; align-items: center; gap: .35rem; min-width: 0;
  overflow-wrap: anywhere; }
.swatch { display: inline-block; width: .8rem; height: .8rem; border-radius: 3px;
  flex: none; }
.s0 { fill: var(--s0); background: var(--s0); } .s1 { fill: var(--s1); background: var(--s1); }
.s2 { fill: var(--s2); background: var(--s2); } .s3 { fill: var(--s3); background: var(--s3); }
.s4 { fill: var(--s4); background: var(--s4); } .s5 { fill: var(--s5); background: var(--s5); }
.s6 { fill: var(--s6); background: var(--s6); } .s7 { fill: var(--s7); background: var(--s7); }
.gallery { list-style: none; padding: 0; margin: 0; display: grid; gap: .75rem;
  grid-template-columns: repeat(auto-fill, minmax(9.5rem, 1fr)); }
.gallery li { min-width: 0; font-size: .8rem; }
.gallery img { display: block; width: 100%; height: auto; border-radius: 8px;
  background: #8882; }
.gallery span { display: block; color: var(--muted); overflow-wrap: anywhere; }
"""

SCRIPT = r""""use strict";
// The Fluxgate console. Credentials (the API key, the admin token) live only in this
// script's variables and in the password fields: never in storage, a cookie or a URL.
// Text from the server goes in through textContent only, never parsed as HTML.
(() => {
  const $ = (id) => document.getElementById(id);
  const MAX_REFERENCES = 4;
  const MAX_REFERENCE_BYTES = 1024 * 1024;
  const MAX_REFERENCE_SIDE = 511;
  const POLL_LIMIT_MS = 15 * 60 * 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const SERIES = 8;
  // GET /v1/admin/usage reads one ledger per key (on Workers, a Durable Object call each):
  // 40 keys a page stays under Workers Free's 50 subrequests a request. The chart follows
  // next_cursor for up to 1,000 keys.
  const USAGE_PAGE = 40;
  const USAGE_PAGES = 25;

  const state = {
    busy: false,
    references: [],  // {file, url, width, height, problems}
    referencesVersion: 0,
    adminToken: null,
    keys: [],
    usage: null,
    newKey: null,  // {id, key}
  };

  // ---- helpers -------------------------------------------------------------------------

  const endpoint = (path) => new URL(path, document.baseURI);

  function sameOrigin(url) {
    // A job's status_url may carry PUBLIC_BASE_URL's origin: poll the same path here.
    const parsed = new URL(url, document.baseURI);
    return new URL(parsed.pathname + parsed.search, location.origin);
  }

  async function readBody(response) {
    const text = await response.text();
    if (!text) return {};
    try {
      return JSON.parse(text);
    } catch {
      return { error: { code: "invalid_response", message: text.slice(0, 300) } };
    }
  }

  class Problem extends Error {
    constructor(status, error, requestId) {
      const e = error || {};
      super(e.message || "The request failed.");
      this.status = status;
      this.code = e.code || (status ? "http_" + status : "network_error");
      this.requestId = e.request_id || requestId || null;
    }
    describe() {
      return `${this.status ? this.status + " " : ""}${this.code}: ${this.message}`;
    }
  }

  function problemOf(response, body) {
    const fromHeader = response.headers.get("X-Request-Id");
    return new Problem(response.status, body.error, body.request_id || fromHeader);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function show(el, visible) {
    el.classList.toggle("hidden", !visible);
  }

  function element(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (name === "text") el.textContent = value;
      else if (name === "className") el.className = value;
      else if (name === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(name, value);
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  function svg(tag, attrs = {}, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  function formatUsd(value) {
    const v = Number(value) || 0;
    if (v === 0) return "$0";
    if (v >= 100) return `$${v.toFixed(0)}`;
    if (v >= 1) return `$${v.toFixed(2)}`;
    return `$${v.toPrecision(2).replace(/0+$/, "").replace(/\.$/, "")}`;
  }

  const formatTime = (unix) =>
    unix ? new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "";

  function utcDay(offsetDays) {
    const now = new Date();
    const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    return new Date(day + offsetDays * 86400000).toISOString().slice(0, 10);
  }

  function daysBetween(from, to) {
    const days = [];
    for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z");
      t += 86400000) {
      days.push(new Date(t).toISOString().slice(0, 10));
    }
    return days;
  }

  async function copyText(text, input, note) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      note.textContent = "Copied.";
    } catch {
      // Fallback: select the read-only field so that the person can copy it.
      input.focus();
      input.select();
      let copied = false;
      try {
        copied = document.execCommand("copy");
      } catch {
        copied = false;
      }
      note.textContent = copied ? "Copied." : "Selected: press Ctrl+C (Cmd+C) to copy.";
    }
  }

  // ---- server --------------------------------------------------------------------------

  async function checkServer() {
    try {
      const response = await fetch(endpoint("healthz"), { cache: "no-store" });
      const health = await readBody(response);
      if (!response.ok) throw problemOf(response, health);
      $("server").textContent =
        `Model ${health.model}, Fluxgate ${health.version}. Server status: ${health.status}.`;
      show($("placeholder-banner"), health.model.startsWith("placeholder"));
    } catch (err) {
      $("server").textContent = `The server did not answer /healthz (${err.message}).`;
    }
  }

  // ---- reference images ----------------------------------------------------------------

  async function sniff(file) {
    const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
    const ascii = (from, to) => String.fromCharCode(...head.slice(from, to));
    if (head[0] === 0x89 && ascii(1, 4) === "PNG") return "image/png";
    if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
    if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
    return null;
  }

  async function dimensions(file, url) {
    if (window.createImageBitmap) {
      const bitmap = await createImageBitmap(file);
      const size = [bitmap.width, bitmap.height];
      bitmap.close();
      return size;
    }
    const image = new Image();
    image.src = url;
    await image.decode();
    return [image.naturalWidth, image.naturalHeight];
  }

  async function inspect(file) {
    const item = { file, url: URL.createObjectURL(file), width: 0, height: 0, problems: [] };
    const kind = await sniff(file);
    if (file.size > MAX_REFERENCE_BYTES) {
      item.problems.push(`${formatBytes(file.size)}: over the 1 MiB limit`);
    }
    if (!kind) {
      item.problems.push("not a PNG, JPEG or WebP image");
      return item;
    }
    try {
      [item.width, item.height] = await dimensions(file, item.url);
    } catch {
      item.problems.push("cannot be decoded");
      return item;
    }
    if (item.width > MAX_REFERENCE_SIDE || item.height > MAX_REFERENCE_SIDE) {
      item.problems.push(
        `${item.width}\u00d7${item.height}: each side must be under 512 px`);
    }
    return item;
  }

  function referenceProblem() {
    if (state.references.length > MAX_REFERENCES) {
      return `At most ${MAX_REFERENCES} reference images (${state.references.length} chosen).`;
    }
    const bad = state.references.filter((item) => item.problems.length);
    if (!bad.length) return null;
    return bad.map((item) => `${item.file.name}: ${item.problems.join("; ")}.`).join(" ");
  }

  function renderReferences() {
    const list = $("thumbs");
    list.replaceChildren();
    state.references.forEach((item, i) => {
      const size = item.width ? `${item.width}\u00d7${item.height}, ` : "";
      list.append(element("li", { className: item.problems.length ? "thumb bad" : "thumb" },
        element("img", { src: item.url, alt: `Reference image ${i + 1}` }),
        element("span", { text: item.file.name }),
        element("span", { className: "muted", text: size + formatBytes(item.file.size) }),
        item.problems.length
          ? element("span", { className: "problem", text: item.problems.join("; ") })
          : null));
    });
    const problem = referenceProblem();
    $("references-error").textContent = problem ? `Not sent: ${problem}` : "";
    show($("references-error"), Boolean(problem));
    show($("references-clear"), state.references.length > 0);
    updateGenerateButton();
    updateModelHint();
  }

  function clearReferences() {
    state.referencesVersion += 1;
    state.references.forEach((item) => URL.revokeObjectURL(item.url));
    state.references = [];
  }

  $("references").addEventListener("change", async () => {
    clearReferences();
    const version = state.referencesVersion;
    const files = Array.from($("references").files);
    const inspected = await Promise.all(files.map(inspect));
    if (version !== state.referencesVersion) {  // another choice came in meanwhile
      inspected.forEach((item) => URL.revokeObjectURL(item.url));
      return;
    }
    state.references = inspected;
    renderReferences();
  });

  $("references-clear").addEventListener("click", () => {
    clearReferences();
    $("references").value = "";
    renderReferences();
  });

  // ---- models --------------------------------------------------------------------------

  // What the picker offers until GET /v1/models answers, or when it cannot: the short
  // names (every server takes them) and each one's schedule.
  const FALLBACK_MODELS = [
    ["flux-2-dev", true, 25],
    ["flux-2-klein-4b", false, 4],
    ["flux-2-klein-9b", false, 4],
  ].map(([id, settable, steps], i) => ({
    id, name: id, default: i === 0, allowed: true,
    capabilities: {
      steps: { settable, default: steps, min: settable ? 1 : steps, max: settable ? 50 : steps },
    },
  }));
  const TILE = 512;
  const MEGAPIXEL = 1024 * 1024;

  const models = {
    cards: FALLBACK_MODELS,
    note: "",
    key: null,  // the key the list was asked for
    version: 0,
    chosen: null,  // what the person picked, kept across lists
    freeSteps: null,  // the person's steps, kept while a fixed schedule is shown
  };

  // "placeholder/flux-2-klein-4b", "@cf/black-forest-labs/flux-2-klein-4b": one model.
  const shortName = (id) => String(id || "")
    .replace(/^placeholder\//, "").replace(/^@cf\//, "").replace(/^black-forest-labs\//, "");

  const unitUsd = (value) => `$${Number(value) || 0}`;

  function priceHint(pricing) {
    switch (pricing && pricing.basis) {
      case "tile_step": return `${unitUsd(pricing.output_tile_step_usd)}/tile/step`;
      case "tile": return `${unitUsd(pricing.output_tile_usd)}/tile`;
      case "megapixel": return `${unitUsd(pricing.first_output_megapixel_usd)}/first MP`;
      default: return "";
    }
  }

  // The server's estimate (pricing.py): 512x512 tiles and started megapixels counted whole.
  function estimateUsd(pricing, width, height, steps, inputs) {
    const p = pricing || {};
    const n = (value) => Number(value) || 0;
    const tiles = (w, h) => Math.ceil(w / TILE) * Math.ceil(h / TILE);
    const megapixels = (w, h) => Math.ceil((w * h) / MEGAPIXEL);
    const sum = (count) => inputs.reduce((total, [w, h]) => total + count(w, h), 0);
    if (p.basis === "tile_step") {
      return steps * (tiles(width, height) * n(p.output_tile_step_usd) +
        sum(tiles) * n(p.input_tile_step_usd));
    }
    if (p.basis === "tile") {
      return tiles(width, height) * n(p.output_tile_usd) + sum(tiles) * n(p.input_tile_usd);
    }
    if (p.basis === "megapixel") {
      return n(p.first_output_megapixel_usd) +
        (megapixels(width, height) - 1) * n(p.next_output_megapixel_usd) +
        sum(megapixels) * n(p.input_megapixel_usd);
    }
    return null;
  }

  function selectedCard() {
    return models.cards.find((card) => card.id === $("model").value) || null;
  }

  function stepsOf(card) {
    return (card && card.capabilities && card.capabilities.steps) || null;
  }

  function estimateText(card) {
    const width = Number($("width").value);
    const height = Number($("height").value);
    if (!card || !card.pricing || !(width > 0) || !(height > 0)) return "";
    const schedule = stepsOf(card);
    const settable = !schedule || schedule.settable !== false;
    const steps = Number($("steps").value) || (schedule ? schedule.default : 0);
    const inputs = state.references.filter((item) => item.width && !item.problems.length)
      .map((item) => [item.width, item.height]);
    const usd = estimateUsd(card.pricing, width, height, steps, inputs);
    if (usd === null) return "";
    const price = `$${usd.toFixed(6).replace(/0+$/, "").replace(/\.$/, "")}`;
    const what = [`${width}\u00d7${height}`];
    if (settable) what.push(`${steps} steps`);
    if (inputs.length) what.push(`${inputs.length} reference image(s)`);
    return `Estimated ${price} for ${what.join(", ")}.`;
  }

  function updateModelHint() {
    const card = selectedCard();
    const parts = models.note ? [models.note] : [];
    if (card) {
      const schedule = stepsOf(card);
      if (card.description) parts.push(card.description);
      else if (schedule && schedule.settable === false) {
        parts.push(`Steps fixed at ${schedule.default}.`);
      }
      parts.push(estimateText(card));
      if (card.stands_in_for) {
        parts.push(`Drawn by the offline placeholder standing in for ${card.stands_in_for}.`);
      }
    }
    $("model-hint").textContent = parts.filter(Boolean).join(" ");
  }

  // The steps field follows the model: disabled (and not sent) on a fixed schedule, showing
  // that schedule; back to the person's value when the model takes steps again.
  function applyModel() {
    const card = selectedCard();
    const schedule = stepsOf(card);
    const steps = $("steps");
    if (schedule && schedule.settable === false) {
      if (!steps.disabled) models.freeSteps = steps.value;
      steps.disabled = true;
      steps.value = String(schedule.default);
      steps.title = `${card.name || card.id} runs a fixed ${schedule.default}-step schedule.`;
    } else {
      if (steps.disabled) {
        steps.disabled = false;
        steps.value = models.freeSteps ?? String(schedule ? schedule.default : 25);
        models.freeSteps = null;
      }
      steps.removeAttribute("title");
      if (schedule) {
        steps.min = String(schedule.min);
        steps.max = String(schedule.max);
      }
    }
    updateModelHint();
  }

  function renderModels(cards, note) {
    models.cards = cards;
    models.note = note;
    const select = $("model");
    select.replaceChildren(...cards.map((card) => {
      const label = [card.name || card.id, priceHint(card.pricing)].filter(Boolean)
        .join(" \u00b7 ");
      const refused = card.allowed === false;
      const option = element("option", {
        value: card.id, text: refused ? `${label} (not allowed for this key)` : label,
      });
      option.disabled = refused;
      return option;
    }));
    const usable = cards.filter((card) => card.allowed !== false);
    const kept = models.chosen &&
      usable.find((card) => shortName(card.id) === shortName(models.chosen));
    const pick = kept || usable.find((card) => card.default) || usable[0];
    if (pick) select.value = pick.id;
    else select.selectedIndex = -1;
    applyModel();
  }

  async function loadModels() {
    const key = $("key").value.trim();
    if (!key || key === models.key) return;
    models.key = key;
    const version = ++models.version;
    try {
      const response = await fetch(endpoint("v1/models"), {
        headers: { Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "omit",
      });
      const body = await readBody(response);
      if (!response.ok) throw problemOf(response, body);
      const cards = (Array.isArray(body.data) ? body.data : [])
        .filter((card) => card && typeof card.id === "string" && card.id);
      if (!cards.length) {
        throw new Problem(0, { code: "invalid_response", message: "No models listed." });
      }
      if (version === models.version) renderModels(cards, "");
    } catch (err) {
      if (version !== models.version) return;
      // A refused key stays refused; anything else is asked again on the next change.
      const refused = err instanceof Problem && [401, 403].includes(err.status);
      if (!refused) models.key = null;
      const reason = err instanceof Problem ? err.describe() : err.message;
      renderModels(FALLBACK_MODELS,
        `The models could not be listed (${reason}); showing their short names.`);
    }
  }

  $("key").addEventListener("change", loadModels);
  $("model").addEventListener("change", () => {
    models.chosen = $("model").value;
    applyModel();
  });
  for (const id of ["width", "height", "steps"]) {
    $(id).addEventListener("input", updateModelHint);
  }

  // ---- progress ------------------------------------------------------------------------

  let ticker = null;
  let phase = "";
  let started = 0;

  function tick() {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    $("status").textContent = `${phase} ${seconds} s`;
  }

  function startProgress(label) {
    state.busy = true;
    phase = label;
    started = performance.now();
    show($("progress"), true);
    updateGenerateButton();
    tick();
    ticker = setInterval(tick, 200);
  }

  function setPhase(label) {
    phase = label;
    tick();
  }

  function stopProgress(message) {
    clearInterval(ticker);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    state.busy = false;
    show($("progress"), false);
    $("status").textContent = message ? `${message} in ${seconds} s.` : "";
    updateGenerateButton();
  }

  function updateGenerateButton() {
    $("generate").disabled = state.busy || Boolean(referenceProblem());
  }

  // ---- results -------------------------------------------------------------------------

  function clearResult() {
    show($("result"), false);
    show($("error"), false);
    show($("empty"), false);
    $("image").removeAttribute("src");
    $("download").removeAttribute("href");
    $("url").value = "";
    $("copied").textContent = "";
    for (const dd of $("meta").querySelectorAll("dd")) dd.textContent = "";
  }

  function showFailure(problem) {
    clearResult();
    $("error-code").textContent = problem.code;
    $("error-status").textContent = problem.status ? `(HTTP ${problem.status})` : "";
    $("error-message").textContent = problem.message;
    $("error-request-id").textContent = problem.requestId || "";
    show($("error-request"), Boolean(problem.requestId));
    show($("error"), true);
  }

  function showResult(body, cache) {
    clearResult();
    const data = (body.data && body.data[0]) || {};
    const url = data.url || (data.b64_json ? `data:${body.content_type};base64,${data.b64_json}`
      : "");
    $("image").src = url;
    $("image").alt = `Generated image ${body.id}`;
    $("download").href = url;
    const extension = (body.content_type || "image/png").split("/")[1] || "png";
    $("download").setAttribute("download", `${body.id}.${extension}`);
    $("url").value = data.url || "";
    const cost = body.cost || {};
    const references = (body.reference_images || []).length;
    const meta = {
      "meta-id": body.id,
      "meta-model": body.model,
      "meta-cache": cache,
      "meta-seed": String(body.seed),
      "meta-size": `${body.width}\u00d7${body.height}, ${body.steps} steps`,
      "meta-cost": `charged $${(cost.charged_usd || 0).toFixed(5)}` +
        ` (estimated $${(cost.estimated_usd || 0).toFixed(5)})`,
      "meta-type": `${body.content_type}, ${formatBytes(body.bytes || 0)}`,
      "meta-references": String(references),
      "meta-expires": data.expires_at ? formatTime(data.expires_at) : "",
    };
    for (const [id, text] of Object.entries(meta)) $(id).textContent = text ?? "";
    show($("result"), true);
  }

  $("image").addEventListener("error", () => {
    if ($("image").getAttribute("src")) {
      $("copied").textContent = "The image could not be loaded (expired URL?).";
    }
  });

  async function followJob(job, authorization) {
    const deadline = performance.now() + POLL_LIMIT_MS;
    let delay = 400;
    for (;;) {
      if (job.status === "succeeded") {
        return { body: job.result, cache: job.result.cached ? "HIT" : "MISS" };
      }
      if (job.status === "failed") {
        const e = job.error || {};
        throw new Problem(e.status || 0, e, e.request_id);
      }
      setPhase(`Job ${job.id} ${job.status}:`);
      if (performance.now() > deadline) {
        const message = `Job ${job.id} is still ${job.status}; stopped polling.`;
        throw new Problem(0, { code: "timeout", message });
      }
      await sleep(delay);
      delay = Math.min(delay * 1.5, 2000);
      const response = await fetch(sameOrigin(job.status_url || `v1/jobs/${job.id}`), {
        headers: { Authorization: authorization }, cache: "no-store", credentials: "omit",
      });
      const body = await readBody(response);
      if (!response.ok) throw problemOf(response, body);
      job = body;
    }
  }

  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.busy) return;
    const blocked = referenceProblem();
    if (blocked) {
      renderReferences();
      return;
    }
    const form = new FormData();
    form.append("prompt", $("prompt").value);
    form.append("width", $("width").value);
    form.append("height", $("height").value);
    const model = $("model").value;
    if (model) form.append("model", model);
    if (!$("steps").disabled) form.append("steps", $("steps").value);
    if ($("seed").value !== "") form.append("seed", $("seed").value);
    state.references.forEach((item, i) => form.append(`input_image_${i}`, item.file));
    const authorization = `Bearer ${$("key").value.trim()}`;
    const headers = { Authorization: authorization };
    const asynchronous = $("async").checked;
    if (asynchronous) headers.Prefer = "respond-async";
    startProgress(asynchronous ? "Submitting:" : "Generating:");
    let done = "";
    try {
      // No cache option: the browser would send Cache-Control: no-cache, which the API
      // reads as "skip the cache" (X-Cache: BYPASS).
      const response = await fetch(endpoint("v1/images/generations"), {
        method: "POST", headers, body: form, credentials: "omit",
      });
      const body = await readBody(response);
      if (!response.ok) throw problemOf(response, body);
      if (response.status === 202) {
        const outcome = await followJob(body, authorization);
        showResult(outcome.body, outcome.cache);
        done = `Job ${body.id} succeeded`;
      } else {
        showResult(body, response.headers.get("X-Cache") || (body.cached ? "HIT" : "MISS"));
        done = "Generated";
      }
      if (state.adminToken) refreshActivity();
    } catch (err) {
      showFailure(err instanceof Problem ? err
        : new Problem(0, { code: "network_error", message: err.message }));
      done = "Failed";
    } finally {
      stopProgress(done);
    }
  });

  $("copy").addEventListener("click", () => {
    const url = $("url").value;
    if (url) copyText(url, $("url"), $("copied"));
  });

  // ---- admin ---------------------------------------------------------------------------

  async function admin(path, options = {}) {
    const headers = { Authorization: `Bearer ${state.adminToken}` };
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(endpoint(path), {
      method: options.method || "GET",
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
      cache: "no-store",
      credentials: "omit",
    });
    const body = await readBody(response);
    if (!response.ok) throw problemOf(response, body);
    return body;
  }

  function adminError(id, prefix, err) {
    const text = err instanceof Problem ? err.describe() : err.message;
    const missing = err instanceof Problem && err.status === 404 ? " (not on this server?)" : "";
    $(id).textContent = `${prefix}: ${text}${missing}`;
    show($(id), true);
  }

  $("admin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.adminToken = $("admin-token").value.trim();
    show($("admin-error"), false);
    $("admin-load").disabled = true;
    try {
      await loadKeys();
      show($("admin-body"), true);
      refreshActivity();
    } catch (err) {
      state.adminToken = null;
      show($("admin-body"), false);
      adminError("admin-error", "Could not load the keys", err);
    } finally {
      $("admin-load").disabled = false;
    }
  });

  async function loadKeys() {
    const page = await admin("v1/admin/keys?limit=100");
    state.keys = page.data || [];
    renderKeys();
    $("keys-note").textContent = page.has_more
      ? "Showing the first 100 keys." : `${state.keys.length} key(s).`;
    fillKeySelect($("gallery-key"), state.keys, false);
  }

  function keyState(key) {
    if (key.revoked) return ["revoked", "state-revoked"];
    if (key.expires_at && key.expires_at * 1000 < Date.now()) return ["expired", "state-revoked"];
    return [key.expires_at ? `active until ${formatTime(key.expires_at)}` : "active",
      "state-active"];
  }

  function renderKeys() {
    armed.forEach((timer) => clearTimeout(timer));
    armed.clear();
    const rows = state.keys.map((key) => {
      const [label, className] = keyState(key);
      const cell = (name, ...children) => element("td", { "data-label": name }, ...children);
      const button = (action, text, extra = {}) =>
        element("button", { type: "button", text, dataset: { action, id: key.id }, ...extra });
      const revoke = button("revoke", "Revoke", { className: "danger" });
      if (key.revoked) revoke.disabled = true;
      const rotate = button("rotate", "Rotate");
      if (key.revoked) rotate.disabled = true;
      return element("tr", { dataset: { id: key.id } },
        cell("Name", key.name),
        cell("Id", element("code", { text: key.id })),
        cell("Tier", key.tier || "default"),
        cell("Scopes", (key.scopes || []).join(", ")),
        cell("Created", formatTime(key.created)),
        cell("Status", element("span", { className, text: label })),
        cell("Actions", element("div", { className: "actions" },
          rotate, revoke, button("images", "Images"))));
    });
    $("keys-body").replaceChildren(...rows);
  }

  function fillKeySelect(select, keys, withAll) {
    const chosen = select.value;
    const options = keys.map((key) => element("option", {
      value: key.id, text: key.name ? `${key.name} (${key.id})` : key.id,
    }));
    if (withAll) options.unshift(element("option", { value: "", text: "All keys" }));
    select.replaceChildren(...options);
    if ([...select.options].some((option) => option.value === chosen)) select.value = chosen;
  }

  function showNewKey(created, verb) {
    state.newKey = { id: created.id, key: created.key };
    $("new-key-title").textContent = `${verb} key "${created.name}" (${created.id}).`;
    $("new-key-value").value = created.key;
    $("new-key-note").textContent = "";
    show($("new-key"), true);
  }

  function dismissNewKey() {
    state.newKey = null;
    $("new-key-value").value = "";
    $("new-key-note").textContent = "";
    show($("new-key"), false);
  }

  $("new-key-copy").addEventListener("click", () => {
    if (state.newKey) copyText(state.newKey.key, $("new-key-value"), $("new-key-note"));
  });
  $("new-key-use").addEventListener("click", () => {
    if (!state.newKey) return;
    $("key").value = state.newKey.key;
    loadModels();
    $("gallery-key").value = state.newKey.id;
    $("new-key-note").textContent = "Put in the Generate form.";
  });
  $("new-key-dismiss").addEventListener("click", dismissNewKey);

  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show($("admin-error"), false);
    $("create").disabled = true;
    try {
      const created = await admin("v1/admin/keys", {
        method: "POST", json: { name: $("new-name").value.trim() },
      });
      showNewKey(created, "New");
      $("new-name").value = "";
      await loadKeys();
    } catch (err) {
      adminError("admin-error", "Could not create the key", err);
    } finally {
      $("create").disabled = false;
    }
  });

  const armed = new Map();  // revoke buttons waiting for their confirming click

  $("keys-body").addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { action, id } = button.dataset;
    const path = `v1/admin/keys/${encodeURIComponent(id)}`;
    show($("admin-error"), false);
    if (action === "images") {
      $("gallery-key").value = id;
      loadGallery();
      $("gallery-key").scrollIntoView({ behavior: "smooth", block: "center" });
      return;
    }
    if (action === "revoke" && !armed.has(id)) {
      armed.set(id, setTimeout(() => {
        armed.delete(id);
        button.textContent = "Revoke";
      }, 5000));
      button.textContent = "Confirm revoke";
      return;
    }
    clearTimeout(armed.get(id));
    armed.delete(id);
    button.disabled = true;
    try {
      if (action === "rotate") {
        const grace = Math.max(0, Math.floor(Number($("grace").value) || 0));
        showNewKey(await admin(`${path}/rotate`, {
          method: "POST", json: { grace_seconds: grace },
        }), "Rotated");
      } else if (action === "revoke") {
        await admin(`${path}/revoke`, { method: "POST" });
      }
      await loadKeys();
    } catch (err) {
      adminError("admin-error", `Could not ${action} ${id}`, err);
      button.disabled = false;
    }
  });

  function refreshActivity() {
    loadSpend();
    loadGallery();
  }

  // ---- spend ---------------------------------------------------------------------------

  async function loadSpend() {
    const to = utcDay(0);
    const from = utcDay(-29);
    show($("spend-error"), false);
    try {
      const rows = [];
      let cursor = null;
      for (let pages = 0; pages < USAGE_PAGES; pages += 1) {
        const query = new URLSearchParams({ from, to, limit: String(USAGE_PAGE) });
        if (cursor) query.set("cursor", cursor);
        const page = await admin(`v1/admin/usage?${query}`);
        rows.push(...(page.data || []));
        cursor = page.has_more ? page.next_cursor : null;
        if (!cursor) break;
      }
      state.usage = { from, to, rows };
      const select = $("spend-key");
      fillKeySelect(select, rows.map((row) => ({ id: row.key_id, name: row.name })), true);
      renderSpend();
    } catch (err) {
      state.usage = null;
      $("chart").replaceChildren();
      $("legend").replaceChildren();
      $("today-body").replaceChildren();
      $("chart-caption").textContent = "";
      adminError("spend-error", "Spend is unavailable", err);
    }
  }

  function niceCeiling(value) {
    if (value <= 0) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (value <= step * power) return step * power;
    return 10 * power;
  }

  function renderSpend() {
    const usage = state.usage;
    if (!usage) return;
    const days = daysBetween(usage.from, usage.to);
    const series = usage.rows.map((row, index) => {
      const byDay = new Map((row.days || []).map((d) => [d.day, d]));
      return { row, index, byDay };
    });
    const chosen = $("spend-key").value;
    const shown = chosen ? series.filter((s) => s.row.key_id === chosen) : series;
    drawChart(days, shown);
    const legend = shown.map((s) => element("li", {},
      element("span", { className: `swatch s${s.index % SERIES}` }),
      element("span", { text: `${s.row.name || s.row.key_id} (${s.row.key_id})` })));
    $("legend").replaceChildren(...legend);
    renderToday(series, usage.to);
  }

  let chartWidth = 0;

  function drawChart(days, series) {
    // Drawn at the width it is shown at, so that its text keeps its size on a phone.
    const shownWidth = Math.round($("chart").getBoundingClientRect().width);
    const width = shownWidth > 0 ? Math.max(280, shownWidth) : 640;
    const height = width < 480 ? 200 : 240;
    chartWidth = width;
    const left = 52;
    const right = 8;
    const top = 12;
    const bottom = 26;
    const plotWidth = width - left - right;
    const plotHeight = height - top - bottom;
    const totals = days.map((day) => series.reduce(
      (sum, s) => sum + (Number((s.byDay.get(day) || {}).spent_usd) || 0), 0));
    const peak = niceCeiling(Math.max(0, ...totals));
    const chart = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "chart-title",
    });
    const total = totals.reduce((a, b) => a + b, 0);
    chart.append(svg("title", { id: "chart-title" },
      `Spend per day, ${days[0]} to ${days[days.length - 1]}: ${formatUsd(total)} in all`));
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plotHeight * (1 - fraction);
      chart.append(svg("line", { class: "grid", x1: left, x2: width - right, y1: y, y2: y }));
      chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" },
        formatUsd(peak * fraction)));
    }
    const slot = plotWidth / days.length;
    const barWidth = Math.max(2, slot * 0.72);
    days.forEach((day, i) => {
      const x = left + i * slot + (slot - barWidth) / 2;
      let base = top + plotHeight;
      for (const s of series) {
        const entry = s.byDay.get(day);
        const spent = Number(entry && entry.spent_usd) || 0;
        if (spent <= 0) continue;
        const h = Math.max(1, (spent / peak) * plotHeight);
        base -= h;
        const bar = svg("rect", {
          class: `bar s${s.index % SERIES}`, x: x.toFixed(2), y: base.toFixed(2),
          width: barWidth.toFixed(2), height: h.toFixed(2),
          "data-day": day, "data-key": s.row.key_id,
        });
        bar.append(svg("title", {}, `${s.row.name || s.row.key_id}, ${day}: ` +
          `${formatUsd(spent)}, ${entry.requests} request(s)`));
        chart.append(bar);
      }
      if ((days.length - 1 - i) % 7 === 0) {  // weekly, ending today
        const last = i === days.length - 1;
        chart.append(svg("text", {
          x: (left + i * slot + (last ? slot : slot / 2)).toFixed(2), y: height - 8,
          "text-anchor": last ? "end" : "middle",
        }, day.slice(5)));
      }
    });
    if (total === 0) {
      chart.append(svg("text", {
        class: "empty", x: left + plotWidth / 2, y: top + plotHeight / 2, "text-anchor": "middle",
      }, "No spend in these 30 days."));
    }
    $("chart").replaceChildren(chart);
    $("chart-caption").textContent =
      `Spend per day (UTC), ${days[0]} to ${days[days.length - 1]}: ${formatUsd(total)}.`;
  }

  function renderToday(series, today) {
    const rows = series.map((s) => {
      const entry = s.byDay.get(today) || {};
      return { s, spent: Number(entry.spent_usd) || 0, requests: entry.requests || 0 };
    }).sort((a, b) => b.spent - a.spent);
    const cell = (name, text, className = "") =>
      element("td", { "data-label": name, className, text });
    const body = rows.map(({ s, spent, requests }) => element("tr",
      { dataset: { key: s.row.key_id } },
      element("td", { "data-label": "Key" }, element("div", {},
        element("span", { text: s.row.name || "" }),
        element("code", { className: "id", text: s.row.key_id }))),
      cell("Requests", String(requests), "num"),
      cell("Spent today", formatUsd(spent), "num"),
      cell("30 days", formatUsd(s.row.spent_usd), "num")));
    if (!body.length) {
      body.push(element("tr", {}, element("td", { colspan: "4", text: "No spend yet." })));
    }
    $("today-body").replaceChildren(...body);
  }

  $("spend-key").addEventListener("change", renderSpend);
  if (window.ResizeObserver) {
    new ResizeObserver(() => {
      const width = Math.round($("chart").getBoundingClientRect().width);
      if (state.usage && width > 0 && Math.abs(width - chartWidth) > 24) renderSpend();
    }).observe($("chart"));
  }
  $("spend-refresh").addEventListener("click", loadSpend);

  // ---- gallery -------------------------------------------------------------------------

  let galleryVersion = 0;

  async function loadGallery() {
    const id = $("gallery-key").value;
    const version = ++galleryVersion;
    show($("gallery-error"), false);
    show($("gallery-empty"), false);
    if (!id) {
      $("gallery").replaceChildren();
      return;
    }
    try {
      const page = await admin(`v1/admin/keys/${encodeURIComponent(id)}/images?limit=24`);
      if (version !== galleryVersion) return;
      const items = (page.data || []).filter((image) => image.url).map((image) => {
        const caption = `${image.width}\u00d7${image.height}, seed ${image.seed}`;
        return element("li", { dataset: { id: image.id } },
          element("a", { href: image.url, target: "_blank", rel: "noopener noreferrer" },
            element("img", {
              src: image.url, alt: `${image.id}: ${caption}`, loading: "lazy",
              width: String(image.width), height: String(image.height),
            })),
          element("span", { text: caption }),
          element("span", { text: formatTime(image.created) }));
      });
      $("gallery").replaceChildren(...items);
      show($("gallery-empty"), items.length === 0);
    } catch (err) {
      if (version !== galleryVersion) return;
      $("gallery").replaceChildren();
      adminError("gallery-error", "The gallery is unavailable", err);
    }
  }

  $("gallery-key").addEventListener("change", loadGallery);
  $("gallery-refresh").addEventListener("click", loadGallery);

  updateGenerateButton();
  renderModels(FALLBACK_MODELS, "Enter the API key to list the models it may use, with prices.");
  loadModels();  // a key the browser kept in the field
  checkServer();
})();
"""

FAVICON_SVG = """<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
<rect width="32" height="32" rx="7" fill="#4f46e5"/>
<g stroke="#fff" fill="none">
<path d="M8 26V11M24 26V11" stroke-width="3.5"/>
<path d="M5 8.5h22" stroke-width="3"/>
<path d="M8 13h16" stroke-width="2"/>
</g>
<circle cx="16" cy="19.5" r="3.5" fill="#facc15"/>
</svg>
"""

# The same gate at 16, 32 and 48 px (PNG images in an ICO container), for clients that ask
# for /favicon.ico.
FAVICON_ICO = base64.b64decode(
    "AAABAAMAEBAAAAAAIAB+AgAANgAAACAgAAAAACAAnwQAALQCAAAwMAAAAAAgAPsGAABTBwAAiVBORw0KGgoAAAAN"
    "SUhEUgAAABAAAAAQCAYAAAAf8/9hAAACRUlEQVR4nI2TTUhVQRTHf2fO3Hfv8yNIc/WI3spFLYKKWgaRFUSYFEGR"
    "EET7iNwbbSKhRdsWQUguIjAiSpQgWhQE7X0hSqQLn1r0nu/Dd2emxfUVikIHDjMw8/+fw2/mCMCFgYXrke0edW6j"
    "CN4Aws4RwHjV3EIrrYy+ni6Oy8XTi1fFJs+NBALNXXRbQyTGeyGkjWs2GMaMBKrrddfaQP/HIIrqrrMrr94wZo1Q"
    "qNfrHD6S6MFDOUKAEHarnOW3Uku/fqmTxKZgxRCaDeTYiZihS12kDpJkZwSNRsAqTE/V+fyxTj5PsM4hXd2GlxNV"
    "VAQEpt6sIyIZs6w2IQTOnu+EAC8mKnR2G5xDbLu19fXAyVN5evuUo8cT1Hicz5CocThvOFC0rJYdT5/8Rjdp2XZ7"
    "qpCmsFJ2PLi3QrPVQUdSxYinWttDnKtx/2EfLuWvGMC0NyGAUQBPqRTRJZ+4e/kcI1cG2Je8Z3Y2B3iMboVs2BYi"
    "AWsjbg4+plgssb/wnVtDj0iSnX/XVoOQpQ8wv9QPtgm5GvNL/aROs8NtT2w3ZQIgCqAkcY1nb+/wq9qLtS1efbhB"
    "HDVAOjfv/CtpM3HmsdHM7I04nLOMv7sNQejIV1BNaTbbbbZXERk8s/jDmLjgXMP19FqFwM81DwTUeAC8NwSEvT3Z"
    "nK2tpk41Ue+bi0Y8I4KgGmt5OaW87No4cV5xXgmb+MrLjvJyimqsgiCeETM5U5houcqwiJmLIuuiSHaZBIgiCVFk"
    "nYiZa7nK8ORMYeIPfirqLn+KSVoAAAAASUVORK5CYIKJUE5HDQoaCgAAAA1JSERSAAAAIAAAACAIBgAAAHN6evQA"
    "AARmSURBVHicxZdPbFRVFMZ/59z35nX6N7a1FJgqoCHBoCyIiYQYVwIxILBo3BJ2xrhBY4IhAsZE484YE0OiJroy"
    "NeFPXYC4QTcuXBhIQCmESGhpC62g0NeZ9+49LqYtlrYwY2v8kkkmb+ac77vfOTnvXAHo7TXX1yd+2wsXS8Vi++tY"
    "2BHMPwkhAoTFwUBzFXcJ0f40Hf/45Jm116Y5ZfrL9i1XdsXa+onTeIUPZUKoLJJ3NlQLOE3wIRvKwp+vffvd6mO9"
    "veYEYOeL13ZEccuJECqEUM4BB7LYk98HM8CrJpFqgTz76+Xjp0v9snvr6PJg/qxq3On9pBcRt7TE98sw71yDCyG7"
    "qeKeUR/K++KouTP36X9ODiAiLvepj6PmTh/K+1RUd3mfmoouseULQ0XF+9REdVdkwdYEyYTFd3tdGoJlmNmaSEQU"
    "qi2X59DSohz6oJ2mRsVsaVvx3QNjXLuaU0hkKrdoNEeawqrVMYXC0hsSx1Xif2KOAIDypKEKIVQdEAHn6hPkvc2Q"
    "iYDqXHIA2bllcNZjVVjWHdHULDOk3hsTd63mcphBY9Ps+HTCGBn2ZNnsPHMcMIOBXyscer+Dp54uAHD+XIWD+8co"
    "FoUQHkyuCmlqHJ4nvrVN5xxijgARKCRCR6ejvaM6FjY938BXfd2IAvPYODsBWIBly92MAx2djiQRRKitB8wgy6o1"
    "DKFa/xWlef/6QHhfdWQ613xYMOu95oOLFyp8+N4fJFMlUDFEAlkeA0LkKoAQTFGFcmq8deAR1q4rzORaCDUdK02N"
    "K5czio2CmZH7mHKlifa2EVQCY7eXEUUZhXgSQUknjDR9WK3qEKAKSYPQUIRKltDWeps92w+wcd0PqATOX9nI5yf2"
    "MzJeotgwSQiCak38tQkAMDO8dwg5b+95lfXrv8ffaQdg87PfsKr7N974qI+00gJktaalRp2gGpiYbGbzhpOsX3eG"
    "ifGVeB/hQ8TErW5W9pxj26avmZhsRsTXLKCO1jaCOR7vHiAEh6pHxKbEeUJe4LHugalntU/Nmh0AQSQwPNZTJQz3"
    "VocQHOoyRsZKmNUyLP6FgGBKY3KHH395iau/b6Cxbbj6gwmNLTe5NdbDyZ9eoZjcnRKxxAIwwbmctNzM4c+O8PPZ"
    "bXhTAnDh0nMcPPIFo+MlClG5LgF1jTczJYlThsd6eOfTLyl1XUbVMzi6hjxEFJO7hDpLUPd8DaYU4klAGLyxGjOh"
    "EE8SR5XqJKxzjYjMLExvRbVi2uJCXAYMMyVY/QuMmQXZuXVwQImfCJYZUz1hBo92Vd9gAOWycWPU17UPPCQ+qMQS"
    "yC5HFsIxFxffzLNy0CkjROD6UI5NvftFq+tUrXhYfLBgcVRUn5WPLXgxuf+0C71OHyRivvg5F5Ojp7quY36vaoxz"
    "iQPLwcysGjT9qRdz483AcucSpxqD+b1HT3Vd195ec8dPl/rL+fhu0KE4ao1UkyVfiVUTiaPWCHSonI/vPn661D9z"
    "Of0/r+d/A2HNNDgUMPLaAAAAAElFTkSuQmCCiVBORw0KGgoAAAANSUhEUgAAADAAAAAwCAYAAABXAvmHAAAGwklE"
    "QVR4nNWaXYxdVRXHf2vvcz/ns439sO1EWzC2QalJIRhKbRtKK1ihIjMxkRf7YOILT2hifPKBRCMv+mBIQ0IwKAnT"
    "UD+q1irSAiUVaKQ1TRNJhtIPInac77lf5+y1fLhzp52ZOzOduZcZ+k/OvTfnnrP2f5299n/tvfYRbkB3t/neXgkA"
    "B/Ze24bwOKZfMXQLWBZMWBKIgZQEdwFxr2G88Nvjq85M5wgwSWjnzlejkyd3Jw/t7vtMNtv+lCmPOZ/KmMYErQC2"
    "NNyvO4F3acSl0BCXxXG4VBr50Z9e3fRBjeukA7UT+x/o25uKOl6IXG5VJR7EzAIiIuCWmD0ABoqZiYhPp1aQaPFa"
    "nAw/fvSvm47XOEt390u+t7cnPLLn4v0+1X7UTLNBi4ngouUgPRsMTbzLRSKuFOKR/b/722df6e5+yYuZyaMPXllv"
    "ZM4KbmUIxSDi/HITrgczDd7nvKEDQnnry3/ecNWJiIXA0ynfujKEYvJJJQ8g4nwIxaTKladFxOQbey9vVVJnQAVs"
    "WWJ94RAFZ454m1PkYBTlvJkutcwsGmZqUZTzihyMzHSXajwhNlMhArLcfWKgOvWUiIhqjJnuisBtVq3ANKkUgUrZ"
    "qMTL2zGRF7I5wabScFXObnMk4tLTk5QIxLGx8bYU67sizKrnlhQGCAwOKBfOl4mi6U4YIi4d1cuwzkFh3Ni9J883"
    "v9W6VJTr4t0zZb7/RIm29hm9ABizJisRqFQMDRAC+CUWVw3gPBSLNmfvz5lta4NYbOkHc63N+UJ3TgfchIFoGSYV"
    "fqLN+dqu+7cq5Fscx44WePt0iULBSJKpAZhKCbl8vbhcGESgWDDiaWoXRUI+L4yOGdmcmyGlczpgVvW8/1rCxYvG"
    "jl05Nm5KTZIVgff7Yt44WSSTEWwW4/OSd1AuG/ftrG//9RNF8nkhimaPo1k7yAzSGcGXjAf35/ny9tyU/998o8jJ"
    "vxfIZBwhWZwDPoJCQdn3tTz33jfV/ulTRd58vUg2KyRz2J8zwsyqx9iYESbUqDYu7vhChkPPr8H7xYeRCIRgrFkb"
    "EUK1LdWq4o2N2WT7c+Gmhqdz12W09t3R6ejoTC+O+RyoSba7SdVb7plOw1iwQKpWn87b/yjx3KERWltlVoUAQyY/"
    "Z8K5aqh857vt3H1Pdg47s2PBDtRicmhQOffPMh2djhCmXuMkYAhJSIEJka/gnBJ0ajr3HoaHlKFBnWL7Y3Vg8sYI"
    "8i1Vrb7RASfKWLET7xPWrOjHiTI8tpJiJU9rfgQRw8wBhvcQx9JQolz0rTXFqB0AIsZosY0dXzrK13c8z4bVfXhR"
    "PhpaxytvPcYfT30b7wPeJZgJItV7G0mGTZskiBilcp7vPfpjDuz5JahH4wwgdLb/l8/ffpptm1/jJ7/6BaoeJwFm"
    "GRsLQVNUyLnAWKGdh7b/mgP7fk5pfAXlYjtJSJGEiHKlheLwGu6562UO7v8phXIL4haZvqe33QwjIUR0tA7Qc/8z"
    "aLEdEcO5gIhVf4vio5jK6Gq+eu+L3Lb+POVKDpHGV3sNO+BEKcc5Nq67wKqVV0iSDE5mPl3BUHWksqPcsekdynEW"
    "qXPdgttv2AKg5shnxnEuzFtBNTFasqNNqxM37IAhRC7mfyOrSeIMbp6wEHVcG/w0zmlTnGjcARMy6RLvf7iFf1/a"
    "SiozRgipGdepeVKpMoODG3j3ve1k0wXsk+AAgFDNss/+/ockIU0mM04SIlQ9qp4QIrwk+NwIz/3hB/QPryWKKrNO"
    "MRaCJo0BTz47zvm+u3nq2UMMjH6KXFs/mfwQmfww2bZ+EnM885ufcfytbtpyw6g2p0rQtESm6mjJjXDq3D7eu/xF"
    "dt91hM91/YvIBT746HZOnHmEvqtbaM2PoE0swTZ1ua7qac0PMzy+khf/8gTOhcnzmXSJtpahpj35Gppeb1D1RD6m"
    "o3VgUlIFUJOmkweImJixz4cbl3fzTb7MhGALI7sQ+9chRGZaqVcfvRHez6wPNbNStzj7gplW5OEHLp31Pn+nalmp"
    "U6EOAdau87S3uyllj5ER5T8fBrxf/HS4AfvqXMaFUDgXibgTzqXuDKFk07cIzKpP4urlhEvTVl3eQzrdWGFrsfbN"
    "zJxLoepO3NQWk8jMGuXNlDxuFgu3f8MW05HjXWfN4sPpVKcz07olpOmrr0ZXUY3YN9OkyjU+fOR411lnZuI9T8Zh"
    "bMD7XGSmof6ty4+JbdaoypUnzUxcT0+vO3Ks64olhR4RV5rYh11ksfDjg6GJ9zkv4kqWFHqOHOu60tPT6279Vw1q"
    "F9/SL3vUcCu+bvN/GXqdWnck1+EAAAAASUVORK5CYII="
)
