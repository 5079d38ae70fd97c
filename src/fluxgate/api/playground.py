"""The playground: one dependency-free page to try the API from a browser.

Served by the app itself (so it works on the Worker and locally). The API key lives only in
a JavaScript variable of the page: never in storage, a cookie or a URL. The script is a
separate file so the page can run under a strict Content-Security-Policy (no inline code).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fluxgate playground</title>
<style>
  :root { font-family: system-ui, sans-serif; color-scheme: light dark; }
  body { max-width: 960px; margin: 2rem auto; padding: 0 1rem; }
  form { display: grid; grid-template-columns: 9rem 1fr; gap: .6rem 1rem; align-items: center; }
  label { font-weight: 600; }
  textarea, input, select { font: inherit; padding: .35rem; }
  .row { display: flex; gap: .5rem; align-items: center; }
  button { font: inherit; padding: .5rem 1.2rem; cursor: pointer; }
  #result { margin-top: 1.5rem; display: grid; grid-template-columns: minmax(0, 3fr) 2fr; gap: 1rem; }
  #image { max-width: 100%; border-radius: 6px; background: #8882; }
  #meta { font-family: ui-monospace, monospace; font-size: .85rem; white-space: pre-wrap; }
  #error { color: #c0392b; font-weight: 600; }
  .hidden { display: none !important; }
</style>
</head>
<body>
<h1>Fluxgate playground</h1>
<p>Generate with FLUX.2 [dev] through this gateway. Your API key stays in this page's
memory only: reload the page and it is gone.</p>
<form id="form">
  <label for="key">API key</label>
  <input id="key" type="password" autocomplete="off" placeholder="fgk_... or fgt_..." required>
  <label for="prompt">Prompt</label>
  <textarea id="prompt" rows="3" required placeholder="a paper crane on a desk"></textarea>
  <label for="width">Size</label>
  <div class="row">
    <input id="width" type="number" min="256" max="1920" step="16" value="1024"> ×
    <input id="height" type="number" min="256" max="1920" step="16" value="768">
  </div>
  <label for="steps">Steps</label>
  <input id="steps" type="number" min="1" max="50" value="25">
  <label for="seed">Seed</label>
  <input id="seed" type="number" min="0" placeholder="random">
  <label for="references">Reference images</label>
  <input id="references" type="file" accept="image/png,image/jpeg,image/webp" multiple>
  <span></span>
  <div class="row"><button id="generate" type="submit">Generate</button>
    <span id="status" role="status"></span></div>
</form>
<p id="error" role="alert" class="hidden"></p>
<section id="result" class="hidden">
  <img id="image" alt="generated image">
  <div>
    <div id="meta"></div>
    <p class="row"><button id="copy" type="button">Copy signed URL</button>
      <span id="copied"></span></p>
  </div>
</section>
<script src="playground.js"></script>
</body>
</html>
"""

SCRIPT = r"""
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  let signedUrl = null;

  function showError(message) {
    $("error").textContent = message;
    $("error").classList.remove("hidden");
  }

  $("references").addEventListener("change", () => {
    if ($("references").files.length > 4) {
      showError("At most 4 reference images.");
      $("references").value = "";
    }
  });

  $("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("error").classList.add("hidden");
    const key = $("key").value.trim();
    const form = new FormData();
    form.append("prompt", $("prompt").value);
    form.append("width", $("width").value);
    form.append("height", $("height").value);
    form.append("steps", $("steps").value);
    if ($("seed").value !== "") form.append("seed", $("seed").value);
    Array.from($("references").files).slice(0, 4)
      .forEach((file, i) => form.append(`input_image_${i}`, file));
    $("generate").disabled = true;
    $("status").textContent = "Generating…";
    try {
      const response = await fetch(new URL("v1/images/generations", document.baseURI), {
        method: "POST",
        headers: { Authorization: `Bearer ${key}` },
        body: form,
      });
      const body = await response.json();
      if (!response.ok) {
        const e = body.error || {};
        showError(`${response.status} ${e.code || ""}: ${e.message || "request failed"}`);
        return;
      }
      signedUrl = body.data[0].url;
      $("image").src = signedUrl;
      $("meta").textContent = [
        `id         ${body.id}`,
        `model      ${body.model}`,
        `cache      ${response.headers.get("X-Cache") || (body.cached ? "HIT" : "MISS")}`,
        `seed       ${body.seed}`,
        `size       ${body.width}×${body.height}, ${body.steps} steps`,
        `cost       $${body.cost.estimated_usd.toFixed(5)} (charged $${body.cost.charged_usd.toFixed(5)})`,
        `type       ${body.content_type}, ${body.bytes} bytes`,
        `expires    ${new Date(body.data[0].expires_at * 1000).toISOString()}`,
      ].join("\n");
      $("result").classList.remove("hidden");
    } catch (err) {
      showError(`Network error: ${err.message}`);
    } finally {
      $("generate").disabled = false;
      $("status").textContent = "";
    }
  });

  $("copy").addEventListener("click", async () => {
    if (!signedUrl) return;
    try {
      await navigator.clipboard.writeText(signedUrl);
      $("copied").textContent = "Copied.";
    } catch {
      window.prompt("Copy the signed URL:", signedUrl);
    }
  });
})();
"""

# The page loads only itself; images may come from PUBLIC_BASE_URL, so any https origin.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self' https: blob: data:; connect-src 'self'; form-action 'none'; "
    "base-uri 'self'; frame-ancestors 'none'"
)
