"use strict";
// The Fluxgate console. Credentials (the API key, the admin token) live only in this
// script's variables and in the password fields: never in storage, a cookie or a URL.
// Text from the server goes in through textContent only, never parsed as HTML.
(() => {
  // The page's elements, each of the type the page gives it: a renamed or retyped element
  // fails here, by name, and not later as an undefined property.
  /**
   * @template {Element} T
   * @param {string} id
   * @param {{ new (): T, prototype: T }} type
   * @returns {T}
   */
  function byId(id, type) {
    const found = document.getElementById(id);
    if (!(found instanceof type)) throw new Error(`#${id}: no such ${type.name} in the page`);
    return found;
  }
  /** @param {string} id */
  const $ = (id) => byId(id, HTMLElement);
  /** @param {string} id */
  const input = (id) => byId(id, HTMLInputElement);
  /** @param {string} id */
  const select = (id) => byId(id, HTMLSelectElement);
  /** @param {string} id */
  const button = (id) => byId(id, HTMLButtonElement);
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
  const TOP_USERS = 10;  // what GET /v1/admin/usage lists per key

  // The shapes the script keeps. API bodies are JSON as docs/api.md describes them: read
  // into these where the script keeps them, checked where a wrong guess would matter.
  /** @typedef {{ file: File, url: string, width: number, height: number, problems: string[] }} Reference */
  /**
   * @typedef {object} Pricing
   * @property {string} [basis] "tile_step", "tile" or "megapixel"
   * @property {number} [output_tile_step_usd]
   * @property {number} [input_tile_step_usd]
   * @property {number} [output_tile_usd]
   * @property {number} [input_tile_usd]
   * @property {number} [first_output_megapixel_usd]
   * @property {number} [next_output_megapixel_usd]
   * @property {number} [input_megapixel_usd]
   */
  /** @typedef {{ settable?: boolean, default: number, min: number, max: number }} Steps */
  /**
   * @typedef {object} ModelCard
   * @property {string} id
   * @property {string} [name]
   * @property {boolean} [default]
   * @property {boolean} [allowed]
   * @property {string} [description]
   * @property {string} [stands_in_for]
   * @property {Pricing} [pricing]
   * @property {{ steps?: Steps }} [capabilities]
   */
  /**
   * @typedef {object} ApiKey
   * @property {string} id
   * @property {string} [name]
   * @property {string | null} [tier] null: the policy's default tier
   * @property {string[]} [scopes]
   * @property {number} [created]
   * @property {number | null} [expires_at]
   * @property {boolean} [revoked]
   */
  /** @typedef {{ day: string, spent_usd?: number, requests?: number }} UsageDay */
  /** @typedef {{ user: string, spent_usd?: number, requests?: number }} UserSpend */
  /**
   * @typedef {object} UsageRow
   * @property {string} key_id
   * @property {string} [name]
   * @property {number} [spent_usd]
   * @property {UsageDay[]} [days]
   * @property {UserSpend[]} [top_users]
   */
  /** @typedef {UserSpend & { key_id?: string, name?: string | undefined }} TopUser */
  /** @typedef {{ row: UsageRow, index: number, byDay: Map<string, UsageDay> }} Series */
  /** @typedef {{ code?: string, message?: string, request_id?: string, status?: number }} ErrorBody */

  /**
   * @type {{
   *   busy: boolean,
   *   references: Reference[],
   *   referencesVersion: number,
   *   adminToken: string | null,
   *   keys: ApiKey[],
   *   usage: { from: string, to: string, rows: UsageRow[] } | null,
   *   newKey: { id: string, key: string } | null,
   *   policy: { defaultTier: string, tiers: string[] } | null,
   * }}
   */
  const state = {
    busy: false,
    references: [],
    referencesVersion: 0,
    adminToken: null,
    keys: [],
    usage: null,
    newKey: null,
    policy: null,  // the policy document's tier names, read at each admin Load
  };

  // ---- helpers -------------------------------------------------------------------------

  /** @param {string} path an API path, relative: resolved like the page's own files */
  const endpoint = (path) => new URL(path, document.baseURI);

  /**
   * A URL the API gave (a signed image URL, a job's status_url) as the same API path and
   * query on the API this page talks to. Such a URL carries PUBLIC_BASE_URL when it is set:
   * maybe another origin, maybe a path prefix, neither of which the page's policy allows
   * (img-src and connect-src are 'self'). The signature covers the path from /v1/ on and
   * the query, not the origin, so the same file answers here. Anything else (data:, blob:)
   * is kept as it is.
   * @param {string} url
   */
  function local(url) {
    const parsed = new URL(url, document.baseURI);
    const at = parsed.pathname.lastIndexOf("/v1/");
    if (!["http:", "https:"].includes(parsed.protocol) || at < 0) return parsed.href;
    return endpoint(parsed.pathname.slice(at + 1) + parsed.search).href;
  }

  /**
   * The JSON body of an API answer (docs/api.md), or an error of our own for anything else.
   * @param {Response} response
   * @returns {Promise<any>}
   */
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
    /**
     * @param {number} status the HTTP status, 0 when none came
     * @param {ErrorBody | undefined} error the API's `error` object
     * @param {string | null} [requestId]
     */
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

  /**
   * @param {Response} response
   * @param {{ error?: ErrorBody, request_id?: string }} body
   */
  function problemOf(response, body) {
    const fromHeader = response.headers.get("X-Request-Id");
    return new Problem(response.status, body.error, body.request_id || fromHeader);
  }

  /** @param {unknown} err what a catch caught */
  const messageOf = (err) => (err instanceof Error ? err.message : String(err));

  /** @param {number} ms */
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * @param {Element} el
   * @param {boolean} visible
   */
  function show(el, visible) {
    el.classList.toggle("hidden", !visible);
  }

  /**
   * An element with text, a class, data attributes and attributes; never markup.
   * @template {keyof HTMLElementTagNameMap} K
   * @param {K} tag
   * @param {Record<string, string | Record<string, string>>} [props]
   * @param {...(Node | string | null | undefined)} children
   * @returns {HTMLElementTagNameMap[K]}
   */
  function element(tag, props = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(props)) {
      if (typeof value !== "string") Object.assign(el.dataset, value);  // dataset
      else if (name === "text") el.textContent = value;
      else if (name === "className") el.className = value;
      else el.setAttribute(name, value);
    }
    for (const child of children) if (child) el.append(child);
    return el;
  }

  /**
   * @param {string} tag
   * @param {Record<string, string | number>} [attrs]
   * @param {string} [text]
   */
  function svg(tag, attrs = {}, text) {
    const el = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
    if (text !== undefined) el.textContent = text;
    return el;
  }

  /** @param {number} n */
  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(2)} MiB`;
  }

  /** @param {unknown} value */
  function formatUsd(value) {
    const v = Number(value) || 0;
    if (v === 0) return "$0";
    if (v >= 100) return `$${v.toFixed(0)}`;
    if (v >= 1) return `$${v.toFixed(2)}`;
    return `$${v.toPrecision(2).replace(/0+$/, "").replace(/\.$/, "")}`;
  }

  /** @param {number | null | undefined} unix */
  const formatTime = (unix) =>
    unix ? new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "";

  /** @param {number} ms a time in this browser's time zone, with the zone's name */
  const formatLocal = (ms) => new Date(ms).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });

  /**
   * A duration in words, exactly: "1 day", "1 hour and 30 minutes", "0 seconds".
   * @param {number} seconds a whole number, 0 or more
   */
  function formatDuration(seconds) {
    /** @type {[string, number][]} */
    const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    /** @type {string[]} */
    const parts = [];
    let rest = seconds;
    for (const [unit, size] of units) {
      const count = Math.floor(rest / size);
      rest -= count * size;
      if (count) parts.push(`${count} ${unit}${count === 1 ? "" : "s"}`);
    }
    if (parts.length <= 1) return parts.join("") || "0 seconds";
    return `${parts.slice(0, -1).join(", ")} and ${parts.slice(-1).join("")}`;
  }

  /** @param {number} offsetDays */
  function utcDay(offsetDays) {
    const now = new Date();
    const day = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
    return new Date(day + offsetDays * 86400000).toISOString().slice(0, 10);
  }

  /**
   * @param {string} from
   * @param {string} to
   */
  function daysBetween(from, to) {
    /** @type {string[]} */
    const days = [];
    for (let t = Date.parse(from + "T00:00:00Z"); t <= Date.parse(to + "T00:00:00Z");
      t += 86400000) {
      days.push(new Date(t).toISOString().slice(0, 10));
    }
    return days;
  }

  /**
   * @param {string} text
   * @param {HTMLInputElement} field where the text is shown, selected when it cannot be copied
   * @param {HTMLElement} note
   */
  async function copyText(text, field, note) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error("no clipboard");
      await navigator.clipboard.writeText(text);
      note.textContent = "Copied.";
    } catch {
      // Fallback: select the read-only field so that the person can copy it.
      field.focus();
      field.select();
      let copied;
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
      show($("placeholder-banner"), String(health.model).startsWith("placeholder"));
    } catch (err) {
      $("server").textContent = `The server did not answer /healthz (${messageOf(err)}).`;
    }
  }

  // ---- reference images ----------------------------------------------------------------

  /** @param {File} file */
  async function sniff(file) {
    const head = new Uint8Array(await file.slice(0, 12).arrayBuffer());
    /**
     * @param {number} from
     * @param {number} to
     */
    const ascii = (from, to) => String.fromCharCode(...head.slice(from, to));
    if (head[0] === 0x89 && ascii(1, 4) === "PNG") return "image/png";
    if (head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return "image/jpeg";
    if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "image/webp";
    return null;
  }

  /**
   * @param {File} file
   * @param {string} url
   * @returns {Promise<[number, number]>}
   */
  async function dimensions(file, url) {
    if ("createImageBitmap" in window) {  // older Safari has none
      const bitmap = await createImageBitmap(file);
      /** @type {[number, number]} */
      const size = [bitmap.width, bitmap.height];
      bitmap.close();
      return size;
    }
    const image = new Image();
    image.src = url;
    await image.decode();
    return [image.naturalWidth, image.naturalHeight];
  }

  /** @param {File} file */
  async function inspect(file) {
    /** @type {Reference} */
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
    const files = Array.from(input("references").files || []);
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
    input("references").value = "";
    renderReferences();
  });

  // ---- models --------------------------------------------------------------------------

  // What the picker offers until GET /v1/models answers, or when it cannot: the short
  // names (every server takes them) and each one's schedule.
  const FALLBACK_MODELS = /** @type {[string, boolean, number][]} */ ([
    ["flux-2-dev", true, 25],
    ["flux-2-klein-4b", false, 4],
    ["flux-2-klein-9b", false, 4],
  ]).map(([id, settable, steps], i) => /** @type {ModelCard} */ ({
    id, name: id, default: i === 0, allowed: true,
    capabilities: {
      steps: { settable, default: steps, min: settable ? 1 : steps, max: settable ? 50 : steps },
    },
  }));
  const TILE = 512;
  const MEGAPIXEL = 1024 * 1024;

  /**
   * @type {{
   *   cards: ModelCard[], note: string, key: string | null, version: number,
   *   chosen: string | null, freeSteps: string | null,
   * }}
   */
  const models = {
    cards: FALLBACK_MODELS,
    note: "",
    key: null,  // the key the list was asked for
    version: 0,
    chosen: null,  // what the person picked, kept across lists
    freeSteps: null,  // the person's steps, kept while a fixed schedule is shown
  };

  // "placeholder/flux-2-klein-4b", "@cf/black-forest-labs/flux-2-klein-4b": one model.
  /** @param {string | null | undefined} id */
  const shortName = (id) => String(id || "")
    .replace(/^placeholder\//, "").replace(/^@cf\//, "").replace(/^black-forest-labs\//, "");

  /** @param {unknown} value */
  const unitUsd = (value) => `$${Number(value) || 0}`;

  /** @param {Pricing | undefined} pricing */
  function priceHint(pricing) {
    const p = pricing || {};
    switch (p.basis) {
      case "tile_step": return `${unitUsd(p.output_tile_step_usd)}/tile/step`;
      case "tile": return `${unitUsd(p.output_tile_usd)}/tile`;
      case "megapixel": return `${unitUsd(p.first_output_megapixel_usd)}/first MP`;
      default: return "";
    }
  }

  // The server's estimate (pricing.py): 512x512 tiles and started megapixels counted whole.
  /**
   * @param {Pricing | undefined} pricing
   * @param {number} width
   * @param {number} height
   * @param {number} steps
   * @param {[number, number][]} inputs each reference image's width and height
   * @returns {number | null}
   */
  function estimateUsd(pricing, width, height, steps, inputs) {
    /** @type {Pricing} */
    const p = pricing || {};
    /** @param {unknown} value */
    const n = (value) => Number(value) || 0;
    /** @typedef {(w: number, h: number) => number} Count */
    /** @type {Count} */
    const tiles = (w, h) => Math.ceil(w / TILE) * Math.ceil(h / TILE);
    /** @type {Count} */
    const megapixels = (w, h) => Math.ceil((w * h) / MEGAPIXEL);
    /** @param {Count} count */
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
    return models.cards.find((card) => card.id === select("model").value) || null;
  }

  /** @param {ModelCard | null} card */
  function stepsOf(card) {
    return (card && card.capabilities && card.capabilities.steps) || null;
  }

  /** @param {ModelCard} card */
  function estimateText(card) {
    const width = Number(input("width").value);
    const height = Number(input("height").value);
    if (!card || !card.pricing || !(width > 0) || !(height > 0)) return "";
    const schedule = stepsOf(card);
    const settable = !schedule || schedule.settable !== false;
    const steps = Number(input("steps").value) || (schedule ? schedule.default : 0);
    const inputs = state.references.filter((item) => item.width && !item.problems.length)
      .map((item) => /** @type {[number, number]} */ ([item.width, item.height]));
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
    const steps = input("steps");
    if (card && schedule && schedule.settable === false) {
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

  /**
   * @param {ModelCard[]} cards
   * @param {string} note
   */
  function renderModels(cards, note) {
    models.cards = cards;
    models.note = note;
    const picker = select("model");
    picker.replaceChildren(...cards.map((card) => {
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
    if (pick) picker.value = pick.id;
    else picker.selectedIndex = -1;
    applyModel();
  }

  async function loadModels() {
    const key = input("key").value.trim();
    if (!key || key === models.key) return;
    models.key = key;
    const version = ++models.version;
    try {
      const response = await fetch(endpoint("v1/models"), {
        headers: { Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "omit",
      });
      const body = await readBody(response);
      if (!response.ok) throw problemOf(response, body);
      /** @type {ModelCard[]} */
      const cards = (Array.isArray(body.data) ? body.data : [])
        .filter((/** @type {ModelCard} */ card) => card && typeof card.id === "string" && card.id);
      if (!cards.length) {
        throw new Problem(0, { code: "invalid_response", message: "No models listed." });
      }
      if (version === models.version) renderModels(cards, "");
    } catch (err) {
      if (version !== models.version) return;
      // A refused key stays refused; anything else is asked again on the next change.
      const refused = err instanceof Problem && [401, 403].includes(err.status);
      if (!refused) models.key = null;
      const reason = err instanceof Problem ? err.describe() : messageOf(err);
      renderModels(FALLBACK_MODELS,
        `The models could not be listed (${reason}); showing their short names.`);
    }
  }

  input("key").addEventListener("change", loadModels);
  input("key").addEventListener("change", () => loadUsage());
  select("model").addEventListener("change", () => {
    models.chosen = select("model").value;
    applyModel();
  });
  for (const id of ["width", "height", "steps"]) {
    $(id).addEventListener("input", updateModelHint);
  }

  // ---- usage ---------------------------------------------------------------------------

  /**
   * The rows of a top end users table: each user's images (charged model calls) and spend,
   * most first; with the key under the user when the table mixes keys.
   * @param {TopUser[]} users
   * @param {boolean} withKey
   * @param {string} empty what the table says without a row
   */
  function topUserRows(users, withKey, empty) {
    const sorted = [...users].sort((a, b) =>
      (Number(b.spent_usd) || 0) - (Number(a.spent_usd) || 0) ||
      (b.requests || 0) - (a.requests || 0) || a.user.localeCompare(b.user));
    const rows = sorted.map((u) => element("tr", { dataset: { user: u.user, key: u.key_id || "" } },
      element("td", { "data-label": "User" }, element("div", {},
        element("span", { text: u.user }),
        withKey && u.key_id
          ? element("code", { className: "id", text: u.name ? `${u.name} (${u.key_id})` : u.key_id })
          : null)),
      element("td", { "data-label": "Images", className: "num", text: String(u.requests || 0) }),
      element("td", { "data-label": "Spent", className: "num", text: formatUsd(u.spent_usd) })));
    if (!rows.length) rows.push(element("tr", {}, element("td", { colspan: "3", text: empty })));
    return rows;
  }

  let usageVersion = 0;

  /**
   * GET /v1/usage with the credential of the Generate form, over the chart's 30 days: an API
   * key's spend with its top end users, or a client token's own end user's spend, budget
   * and rate window.
   */
  async function loadUsage() {
    const key = input("key").value.trim();
    const version = ++usageVersion;
    show($("usage-error"), false);
    if (!key) {
      show($("usage"), false);
      return;
    }
    const query = new URLSearchParams({ from: utcDay(-29), to: utcDay(0) });
    try {
      const response = await fetch(endpoint(`v1/usage?${query}`), {
        headers: { Authorization: `Bearer ${key}` }, cache: "no-store", credentials: "omit",
      });
      const body = await readBody(response);
      if (!response.ok) throw problemOf(response, body);
      if (version === usageVersion) renderUsage(body);
    } catch (err) {
      if (version !== usageVersion) return;
      $("usage-title").textContent = "Usage";
      $("usage-summary").replaceChildren();
      show($("usage-users"), false);
      $("usage-error").textContent =
        `Usage is unavailable: ${err instanceof Problem ? err.describe() : messageOf(err)}`;
      show($("usage-error"), true);
      show($("usage"), true);
    }
  }

  /**
   * @param {{ user?: string | null, spent_usd?: number, requests?: number,
   *   daily_budget_usd?: number | null, remaining_usd?: number | null, days?: UsageDay[],
   *   rate_limit?: { limit: number, period: number, remaining: number, reset: number } | null,
   *   top_users?: UserSpend[] | null }} report
   */
  function renderUsage(report) {
    const own = typeof report.user === "string" && !Array.isArray(report.top_users);
    $("usage-title").textContent = own ? `You (${report.user})` : "This key";
    const days = report.days || [];
    const spent = days.reduce((sum, d) => sum + (Number(d.spent_usd) || 0), 0);
    const images = days.reduce((sum, d) => sum + (d.requests || 0), 0);
    /** @type {[string, string][]} */
    const facts = [
      ["Today", `${formatUsd(report.spent_usd)}, ${report.requests || 0} image(s)`],
      ["30 days", `${formatUsd(spent)}, ${images} image(s)`],
    ];
    const budget = report.daily_budget_usd;
    if (typeof budget === "number") {
      // $4.9975 left of $5 is not "$5.00 of $5.00": more digits where rounding would hide spend
      const left = Number(report.remaining_usd) || 0;
      const shown = left < budget && formatUsd(left) === formatUsd(budget)
        ? `$${left.toFixed(4)}` : formatUsd(left);
      facts.push(["Budget left", `${shown} of ${formatUsd(budget)} today`]);
    } else {
      facts.push(["Budget left", "no daily budget"]);
    }
    const rate = report.rate_limit;
    if (own && rate) {
      facts.push(["Images left", `${rate.remaining} of ${rate.limit} per ` +
        `${formatDuration(rate.period)} (resets in ${formatDuration(rate.reset)})`]);
    }
    $("usage-summary").replaceChildren(...facts.flatMap(([term, text]) =>
      [element("dt", { text: term }), element("dd", { text })]));
    if (!own) {
      $("usage-users-body").replaceChildren(...topUserRows(report.top_users || [], false,
        "No end-user spend in these 30 days."));
    }
    show($("usage-users"), !own);
    show($("usage"), true);
  }

  // ---- progress ------------------------------------------------------------------------

  /** @type {number | undefined} */
  let ticker;
  let phase = "";
  let started = 0;

  function tick() {
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    $("status").textContent = `${phase} ${seconds} s`;
  }

  /** @param {string} label */
  function startProgress(label) {
    state.busy = true;
    phase = label;
    started = performance.now();
    show($("progress"), true);
    updateGenerateButton();
    tick();
    ticker = setInterval(tick, 200);
  }

  /** @param {string} label */
  function setPhase(label) {
    phase = label;
    tick();
  }

  /** @param {string} message */
  function stopProgress(message) {
    clearInterval(ticker);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    state.busy = false;
    show($("progress"), false);
    $("status").textContent = message ? `${message} in ${seconds} s.` : "";
    updateGenerateButton();
  }

  function updateGenerateButton() {
    button("generate").disabled = state.busy || Boolean(referenceProblem());
  }

  // ---- results -------------------------------------------------------------------------

  function clearResult() {
    show($("result"), false);
    show($("error"), false);
    show($("empty"), false);
    $("image").removeAttribute("src");
    $("download").removeAttribute("href");
    input("url").value = "";
    $("copied").textContent = "";
    for (const dd of $("meta").querySelectorAll("dd")) dd.textContent = "";
  }

  /** @param {Problem} problem */
  function showFailure(problem) {
    clearResult();
    $("error-code").textContent = problem.code;
    $("error-status").textContent = problem.status ? `(HTTP ${problem.status})` : "";
    $("error-message").textContent = problem.message;
    $("error-request-id").textContent = problem.requestId || "";
    show($("error-request"), Boolean(problem.requestId));
    show($("error"), true);
  }

  /**
   * A generation (docs/api.md): shown through this page's origin (`local`), the signed URL
   * as the API gave it in the field to copy.
   * @param {any} body
   * @param {string} cache
   */
  function showResult(body, cache) {
    clearResult();
    const data = (body.data && body.data[0]) || {};
    const url = data.url ? local(data.url)
      : data.b64_json ? `data:${body.content_type};base64,${data.b64_json}` : "";
    const image = byId("image", HTMLImageElement);
    image.src = url;
    image.alt = `Generated image ${body.id}`;
    const download = byId("download", HTMLAnchorElement);
    download.href = url;
    const extension = (body.content_type || "image/png").split("/")[1] || "png";
    download.setAttribute("download", `${body.id}.${extension}`);
    input("url").value = data.url || "";
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
    for (const [id, text] of Object.entries(meta)) $(id).textContent = String(text ?? "");
    show($("result"), true);
  }

  $("image").addEventListener("error", () => {
    if ($("image").getAttribute("src")) {
      $("copied").textContent = "The image could not be loaded (expired URL?).";
    }
  });

  /**
   * A job (docs/api.md) polled until it ends: the generation it made, or its Problem.
   * @param {any} job
   * @param {string} authorization
   * @returns {Promise<{ body: any, cache: string }>}
   */
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
      const response = await fetch(local(job.status_url || `v1/jobs/${job.id}`), {
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
    form.append("prompt", byId("prompt", HTMLTextAreaElement).value);
    form.append("width", input("width").value);
    form.append("height", input("height").value);
    const model = select("model").value;
    if (model) form.append("model", model);
    if (!input("steps").disabled) form.append("steps", input("steps").value);
    if (input("seed").value !== "") form.append("seed", input("seed").value);
    state.references.forEach((item, i) => form.append(`input_image_${i}`, item.file));
    const authorization = `Bearer ${input("key").value.trim()}`;
    /** @type {Record<string, string>} */
    const headers = { Authorization: authorization };
    const asynchronous = input("async").checked;
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
      loadUsage();
      if (state.adminToken) refreshActivity();
    } catch (err) {
      showFailure(err instanceof Problem ? err
        : new Problem(0, { code: "network_error", message: messageOf(err) }));
      done = "Failed";
    } finally {
      stopProgress(done);
    }
  });

  $("copy").addEventListener("click", () => {
    const url = input("url").value;
    if (url) copyText(url, input("url"), $("copied"));
  });

  // ---- admin ---------------------------------------------------------------------------

  /**
   * An admin API call with the token given in the page: its JSON body, or its Problem.
   * @param {string} path
   * @param {{ method?: string, json?: unknown }} [options]
   * @returns {Promise<any>}
   */
  async function admin(path, options = {}) {
    /** @type {Record<string, string>} */
    const headers = { Authorization: `Bearer ${state.adminToken}` };
    if (options.json !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(endpoint(path), {
      method: options.method || "GET",
      headers,
      body: options.json !== undefined ? JSON.stringify(options.json) : null,
      cache: "no-store",
      credentials: "omit",
    });
    const body = await readBody(response);
    if (!response.ok) throw problemOf(response, body);
    return body;
  }

  /**
   * @param {string} id
   * @param {string} prefix
   * @param {unknown} err
   */
  function adminError(id, prefix, err) {
    const text = err instanceof Problem ? err.describe() : messageOf(err);
    const missing = err instanceof Problem && err.status === 404 ? " (not on this server?)" : "";
    $(id).textContent = `${prefix}: ${text}${missing}`;
    show($(id), true);
  }

  $("admin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    state.adminToken = input("admin-token").value.trim();
    state.policy = null;
    show($("admin-error"), false);
    button("admin-load").disabled = true;
    try {
      await loadPolicy();
      await loadKeys();
      show($("admin-body"), true);
      refreshActivity();
    } catch (err) {
      state.adminToken = null;
      show($("admin-body"), false);
      adminError("admin-error", "Could not load the keys", err);
    } finally {
      button("admin-load").disabled = false;
    }
  });

  // The policy document's tier names, kept for the page's session: read again at each Load,
  // and when a key names a tier the copy does not have (the policy may have gained it).
  async function loadPolicy() {
    try {
      const doc = await admin("v1/admin/policy");
      state.policy = { defaultTier: String(doc.default_tier), tiers: Object.keys(doc.tiers || {}) };
    } catch {
      state.policy = null;  // the keys are still listed; tierOf says what is not known
    }
  }

  async function loadKeys() {
    const page = await admin("v1/admin/keys?limit=100");
    state.keys = page.data || [];
    const known = state.policy?.tiers;
    if (known && state.keys.some((key) => key.tier && !known.includes(key.tier))) {
      await loadPolicy();
    }
    renderKeys();
    $("keys-note").textContent = page.has_more
      ? "Showing the first 100 keys." : `${state.keys.length} key(s).`;
    fillKeySelect(select("gallery-key"), state.keys, false);
  }

  /**
   * @param {ApiKey} key
   * @returns {[string, string]} the label and its class
   */
  function keyState(key) {
    if (key.revoked) return ["revoked", "state-revoked"];
    if (key.expires_at && key.expires_at * 1000 < Date.now()) return ["expired", "state-revoked"];
    return [key.expires_at ? `active until ${formatTime(key.expires_at)}` : "active",
      "state-active"];
  }

  /**
   * The tier a request with the key meets, by the policy's name: the key's own, or the
   * default tier when it has none, or when its own is no longer in the policy (marked).
   * @param {ApiKey} key
   * @returns {HTMLElement}
   */
  function tierOf(key) {
    const policy = state.policy;
    if (!policy) {
      return element("span", {
        text: key.tier || "the default tier",
        title: "The policy document could not be read.",
      });
    }
    if (!key.tier) {
      return element("span", {
        text: policy.defaultTier, title: "The policy's default tier (the key names none).",
      });
    }
    if (policy.tiers.includes(key.tier)) return element("span", { text: key.tier });
    return element("span", {
      className: "tier-fallback",
      text: `${policy.defaultTier} (fallback from '${key.tier}')`,
      title: `The policy has no tier '${key.tier}': the key gets the default tier.`,
    });
  }

  function renderKeys() {
    const rows = state.keys.map((key) => {
      const [label, className] = keyState(key);
      /**
       * @param {string} name
       * @param {...(Node | string | undefined)} children
       */
      const cell = (name, ...children) => element("td", { "data-label": name }, ...children);
      /**
       * @param {string} action
       * @param {string} text
       * @param {Record<string, string>} [extra]
       */
      const actionButton = (action, text, extra = {}) =>
        element("button", { type: "button", text, dataset: { action, id: key.id }, ...extra });
      const revoke = actionButton("revoke", "Revoke", { className: "danger" });
      if (key.revoked) revoke.disabled = true;
      const rotate = actionButton("rotate", "Rotate");
      if (key.revoked) rotate.disabled = true;
      return element("tr", { dataset: { id: key.id } },
        cell("Name", key.name),
        cell("Id", element("code", { text: key.id })),
        cell("Tier", tierOf(key)),
        cell("Scopes", (key.scopes || []).join(", ")),
        cell("Created", formatTime(key.created)),
        cell("Status", element("span", { className, text: label })),
        cell("Actions", element("div", { className: "actions" },
          rotate, revoke, actionButton("images", "Images"))));
    });
    $("keys-body").replaceChildren(...rows);
  }

  /**
   * @param {HTMLSelectElement} picker
   * @param {{ id: string, name?: string | undefined }[]} keys
   * @param {boolean} withAll
   */
  function fillKeySelect(picker, keys, withAll) {
    const chosen = picker.value;
    const options = keys.map((key) => element("option", {
      value: key.id, text: key.name ? `${key.name} (${key.id})` : key.id,
    }));
    if (withAll) options.unshift(element("option", { value: "", text: "All keys" }));
    picker.replaceChildren(...options);
    if ([...picker.options].some((option) => option.value === chosen)) picker.value = chosen;
  }

  /**
   * @param {{ id: string, key: string, name?: string }} created
   * @param {string} verb
   */
  function showNewKey(created, verb) {
    state.newKey = { id: created.id, key: created.key };
    $("new-key-title").textContent = `${verb} key "${created.name}" (${created.id}).`;
    input("new-key-value").value = created.key;
    $("new-key-note").textContent = "";
    show($("new-key"), true);
  }

  function dismissNewKey() {
    state.newKey = null;
    input("new-key-value").value = "";
    $("new-key-note").textContent = "";
    show($("new-key"), false);
  }

  $("new-key-copy").addEventListener("click", () => {
    if (state.newKey) copyText(state.newKey.key, input("new-key-value"), $("new-key-note"));
  });
  $("new-key-use").addEventListener("click", () => {
    if (!state.newKey) return;
    input("key").value = state.newKey.key;
    loadModels();
    select("gallery-key").value = state.newKey.id;
    $("new-key-note").textContent = "Put in the Generate form.";
  });
  $("new-key-dismiss").addEventListener("click", dismissNewKey);

  $("create-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    show($("admin-error"), false);
    button("create").disabled = true;
    try {
      const created = await admin("v1/admin/keys", {
        method: "POST", json: { name: input("new-name").value.trim() },
      });
      showNewKey(created, "New");
      input("new-name").value = "";
      await loadKeys();
    } catch (err) {
      adminError("admin-error", "Could not create the key", err);
    } finally {
      button("create").disabled = false;
    }
  });

  // ---- confirmation --------------------------------------------------------------------

  const confirmDialog = byId("confirm", HTMLDialogElement);

  /**
   * Asks in the page's dialog (modal; Escape cancels, Cancel has the focus).
   * @param {string} title
   * @param {string} message what happens, in plain words
   * @param {string} action the confirming button's text
   * @returns {Promise<boolean>} true for the confirming button only
   */
  function confirmAction(title, message, action) {
    $("confirm-title").textContent = title;
    $("confirm-message").textContent = message;
    button("confirm-ok").textContent = action;
    confirmDialog.returnValue = "";
    confirmDialog.showModal();
    button("confirm-cancel").focus();
    return new Promise((resolve) => {
      confirmDialog.addEventListener("close",
        () => resolve(confirmDialog.returnValue === "confirm"), { once: true });
    });
  }

  button("confirm-ok").addEventListener("click", () => confirmDialog.close("confirm"));
  button("confirm-cancel").addEventListener("click", () => confirmDialog.close("cancel"));

  // ---- rotation grace ------------------------------------------------------------------

  /** The field's grace in whole seconds; null when it is none (empty, fractional, out of range). */
  function graceSeconds() {
    const field = input("grace");
    const value = field.valueAsNumber;
    return Number.isInteger(value) && field.validity.valid ? value : null;
  }

  const graceRange = () =>
    `a whole number of seconds from ${input("grace").min} to ${input("grace").max}`
    + ` (${formatDuration(Number(input("grace").max))})`;

  function echoGrace() {
    const grace = graceSeconds();
    $("grace-echo").textContent = grace === null ? `Enter ${graceRange()}.`
      : grace === 0 ? "None: a rotated key stops at once." : formatDuration(grace);
  }
  input("grace").addEventListener("input", echoGrace);
  echoGrace();

  /** @param {string} id */
  const nameOf = (id) => state.keys.find((key) => key.id === id)?.name || id;

  /**
   * @param {string} id
   * @param {number} grace
   */
  function rotationMessage(id, grace) {
    const question = `Rotate key ${nameOf(id)} (${id})? A new key is shown once; the current key`;
    if (grace === 0) {
      return `${question} stops working at once, and so do the client tokens it minted.`;
    }
    return `${question} keeps working for ${formatDuration(grace)}`
      + ` (until ${formatLocal(Date.now() + grace * 1000)}), then stops,`
      + " and client tokens it minted stop with it.";
  }

  /** @param {string} id */
  function revocationMessage(id) {
    return `Revoke key ${nameOf(id)} (${id})? The key and every client token it minted stop`
      + " working at once (within about a minute everywhere). This cannot be undone.";
  }

  $("keys-body").addEventListener("click", async (event) => {
    const clicked = event.target instanceof Element
      ? event.target.closest("button[data-action]") : null;
    if (!(clicked instanceof HTMLButtonElement)) return;
    const { action, id } = clicked.dataset;
    if (!action || !id) return;
    const path = `v1/admin/keys/${encodeURIComponent(id)}`;
    show($("admin-error"), false);
    if (action === "images") {
      select("gallery-key").value = id;
      loadGallery();
      select("gallery-key").scrollIntoView({ behavior: "smooth", block: "center" });
      return;
    }
    if (action !== "rotate" && action !== "revoke") return;
    const grace = graceSeconds();
    if (action === "rotate" && grace === null) {
      $("admin-error").textContent = `Not rotated: the rotation grace must be ${graceRange()}.`;
      show($("admin-error"), true);
      input("grace").focus();
      return;
    }
    const confirmed = action === "rotate"
      ? await confirmAction("Rotate a key", rotationMessage(id, grace || 0), "Rotate")
      : await confirmAction("Revoke a key", revocationMessage(id), "Revoke");
    if (!confirmed) return;
    clicked.disabled = true;
    try {
      if (action === "rotate") {
        showNewKey(await admin(`${path}/rotate`, {
          method: "POST", json: { grace_seconds: grace },
        }), "Rotated");
      } else {
        await admin(`${path}/revoke`, { method: "POST" });
      }
      await loadKeys();
    } catch (err) {
      adminError("admin-error", `Could not ${action} ${id}`, err);
      clicked.disabled = false;
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
      /** @type {UsageRow[]} */
      const rows = [];
      /** @type {string | null} */
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
      fillKeySelect(select("spend-key"),
        rows.map((row) => ({ id: row.key_id, name: row.name })), true);
      renderSpend();
    } catch (err) {
      state.usage = null;
      $("chart").replaceChildren();
      $("legend").replaceChildren();
      $("today-body").replaceChildren();
      $("top-users-body").replaceChildren();
      $("chart-caption").textContent = "";
      adminError("spend-error", "Spend is unavailable", err);
    }
  }

  /** @param {number} value */
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
    /** @type {Series[]} */
    const series = usage.rows.map((row, index) => {
      const byDay = new Map((row.days || []).map((d) => [d.day, d]));
      return { row, index, byDay };
    });
    const chosen = select("spend-key").value;
    const shown = chosen ? series.filter((s) => s.row.key_id === chosen) : series;
    drawChart(days, shown);
    const legend = shown.map((s) => element("li", {},
      element("span", { className: `swatch s${s.index % SERIES}` }),
      element("span", { text: `${s.row.name || s.row.key_id} (${s.row.key_id})` })));
    $("legend").replaceChildren(...legend);
    renderToday(series, usage.to);
    renderTopUsers(shown, Boolean(chosen));
  }

  /**
   * The end users who spent most over the chart's days: the chosen key's, or the 10 first
   * of every key's (each with its key).
   * @param {Series[]} shown
   * @param {boolean} oneKey
   */
  function renderTopUsers(shown, oneKey) {
    /** @type {TopUser[]} */
    const users = shown.flatMap((s) => (s.row.top_users || []).map((u) =>
      ({ ...u, key_id: s.row.key_id, name: s.row.name })));
    const top = oneKey ? users : users
      .sort((a, b) => (Number(b.spent_usd) || 0) - (Number(a.spent_usd) || 0))
      .slice(0, TOP_USERS);
    $("top-users-body").replaceChildren(...topUserRows(top, !oneKey,
      "No end-user spend in these 30 days."));
  }

  let chartWidth = 0;

  /**
   * @param {string[]} days
   * @param {Series[]} series
   */
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
      (sum, s) => sum + (Number(s.byDay.get(day)?.spent_usd) || 0), 0));
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
        if (!entry || spent <= 0) continue;
        const h = Math.max(1, (spent / peak) * plotHeight);
        base -= h;
        const bar = svg("rect", {
          class: `bar s${s.index % SERIES}`, x: x.toFixed(2), y: base.toFixed(2),
          width: barWidth.toFixed(2), height: h.toFixed(2),
          "data-day": day, "data-key": s.row.key_id,
        });
        bar.append(svg("title", {}, `${s.row.name || s.row.key_id}, ${day}: ` +
          `${formatUsd(spent)}, ${entry.requests ?? 0} request(s)`));
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

  /**
   * @param {Series[]} series
   * @param {string} today
   */
  function renderToday(series, today) {
    const rows = series.map((s) => {
      const entry = s.byDay.get(today);
      return { s, spent: Number(entry?.spent_usd) || 0, requests: entry?.requests || 0 };
    }).sort((a, b) => b.spent - a.spent);
    /**
     * @param {string} name
     * @param {string} text
     * @param {string} [className]
     */
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

  select("spend-key").addEventListener("change", renderSpend);
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
    const id = select("gallery-key").value;
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
      /** @type {{ id: string, url?: string, width: number, height: number, seed: number, created: number }[]} */
      const images = page.data || [];
      const items = images.filter((image) => image.url).map((image) => {
        const url = local(String(image.url));
        const caption = `${image.width}\u00d7${image.height}, seed ${image.seed}`;
        return element("li", { dataset: { id: image.id } },
          element("a", { href: url, target: "_blank", rel: "noopener noreferrer" },
            element("img", {
              src: url, alt: `${image.id}: ${caption}`, loading: "lazy",
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

  select("gallery-key").addEventListener("change", loadGallery);
  $("gallery-refresh").addEventListener("click", loadGallery);

  updateGenerateButton();
  renderModels(FALLBACK_MODELS, "Enter the API key to list the models it may use, with prices.");
  loadModels();  // a key the browser kept in the field
  loadUsage();
  checkServer();
})();
