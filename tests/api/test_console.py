"""The console: served by the app, and used for real in headless Chromium on both runtimes.

One browser for the module and one server per runtime (``runtime`` is module-scoped here);
each browser test sets up what it needs itself (its own keys, prompts and seeds), so that
the tests also pass alone or split across xdist workers. Screenshots of the console at
390 and 1280 CSS px go to ``$FLUXGATE_ARTIFACTS/console`` when that is set, else to
``console-screenshots/`` in pytest's base temporary directory; the folder is printed and
written to ``console-screenshots.txt`` next to it.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import time
import tomllib
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.api import console
from fluxgate.api.schemas import KeyRotate

from ..support.image_files import image_bytes
from ..support.servers import ADMIN, Server, serve
from ..support.workerd import ROOT

pytestmark = pytest.mark.runtimes("local", "worker")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 30
PHONE = 390
DESKTOP = 1280


@pytest.fixture(scope="module")
def runtime(request: pytest.FixtureRequest) -> str:
    """Module-scoped (conftest's is per test): one server per runtime for the module."""
    return str(request.param)


@pytest.fixture(scope="module")
def server(runtime: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(runtime, tmp_path_factory.mktemp(f"console-{runtime}")) as running:
        yield running


# ---- the files, their headers and their policy (no browser) ----------------------------

# What the page may load, on both runtimes: its own script, stylesheet and images; nothing
# inline, nothing from elsewhere, never in a frame.
POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' blob: data:",
    "connect-src": "'self'",
    "base-uri": "'none'",
    "form-action": "'none'",
    "frame-ancestors": "'none'",
}
# Each path the console answers, the file it answers with and that file's media type.
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console": ("index.html", "text/html; charset=utf-8"),
    "/playground": ("index.html", "text/html; charset=utf-8"),  # the console's former name
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
    "/favicon.svg": ("favicon.svg", "image/svg+xml"),
    "/favicon.ico": ("favicon.ico", "image/vnd.microsoft.icon"),
}
PAGE = (console.DIRECTORY / "index.html").read_text()
SCRIPT = (console.DIRECTORY / "console.js").read_text()
STYLES = (console.DIRECTORY / "console.css").read_text()


def directives(csp: str) -> dict[str, str]:
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in csp.split(";"))
        if part
    }


def assert_console_headers(answer: httpx.Response) -> None:
    """The headers of console/_headers, on every answer of the console's paths."""
    assert directives(answer.headers["content-security-policy"]) == POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "no-cache"


def test_the_console_is_static_files_under_a_strict_policy(client):
    """Each path answers its file from console/, byte for byte, with its media type and the
    policy; the same with PUBLIC_BASE_URL set (below) or not."""
    for path, (name, media_type) in FILES.items():
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == media_type, path
        assert answer.content == (console.DIRECTORY / name).read_bytes(), path
        assert_console_headers(answer)
        assert answer.headers["etag"].startswith('"'), path


@pytest.mark.settings(public_base_url="https://images.example.com/fluxgate")
def test_the_policy_does_not_depend_on_the_public_base_url(client):
    """Signed URLs then carry another origin, but the page shows their images through its
    own (see the browser test below): img-src stays 'self'."""
    policy = directives(client.get("/console").headers["content-security-policy"])
    assert policy == POLICY


def test_the_console_is_answered_in_front_of_the_api(client):
    """As Cloudflare's static assets answer it in front of the Worker: no request id, and
    the asset server's own answers (405, 304, 307) rather than the API's; any other path
    is the API's."""
    page = client.get("/console")
    assert "x-request-id" not in page.headers
    assert "x-request-id" in client.get("/healthz").headers  # the API's answers have one

    # revalidation: the ETag again is a 304 without a body
    for path in FILES:
        first = client.get(path)
        again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == first.headers["etag"]
        assert_console_headers(again)

    # HEAD: the headers without the body
    head = client.head("/console.js")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "text/javascript; charset=utf-8"
    assert_console_headers(head)

    # any other method: 405, no body (Cloudflare's asset server answers it, not the API)
    for method in ("POST", "PUT", "DELETE"):
        refused = client.request(method, "/console.js")
        assert refused.status_code == 405 and refused.content == b"", method
        assert_console_headers(refused)

    # the page's file name moves to its path, keeping the query
    for path, location in (("/index.html", "/"), ("/index", "/"), ("/index.html?a=1", "/?a=1")):
        moved = client.get(path, follow_redirects=False)
        assert moved.status_code == 307 and moved.headers["location"] == location, path
        assert_console_headers(moved)

    # the configuration files are not served, and nothing else is the console's
    for path in ("/_headers", "/_redirects", "/console.js/", "/console/", "/missing.js"):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert missing.json()["error"]["code"] == "not_found", path


def test_the_api_never_sees_a_request_for_the_console(client, access_lines):
    """Every request the API answers writes one access line (on Workers, to Workers Logs);
    the console's write none: they never reach the Worker (locally, the app)."""
    for path in FILES:
        assert client.get(path).status_code == 200, path
    assert client.get("/index.html", follow_redirects=False).status_code == 307
    assert client.post("/console.js").status_code == 405
    assert client.get("/healthz").status_code == 200
    routes = [line["route"] for line in access_lines()]
    assert routes == ["/healthz"]


def test_the_worker_serves_the_directory_as_static_assets():
    """wrangler.toml's [assets]: console/ itself, no binding (the Worker never reads it) and
    no Worker in front of it."""
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    assets = config["assets"]
    assert (ROOT / assets["directory"]).resolve() == console.DIRECTORY
    assert "binding" not in assets and not assets.get("run_worker_first", False)
    # nothing of the console in the Worker's Python bundle (src/ is uploaded as it is)
    assert not console.DIRECTORY.resolve().is_relative_to((ROOT / "src").resolve())


def test_the_page_parses_and_references_only_files_it_has():
    """The page is well formed, its ids are unique, and what it loads are files of console/
    (the API contract link is the API's); nothing inline for the policy to allow."""
    page = PageParser()
    page.feed(PAGE)
    page.close()
    assert page.open == [], f"elements left open: {page.open}"
    assert len(page.ids) == len(set(page.ids)), "an id is used twice"
    loaded = {ref for tag, attr, ref in page.refs if (tag, attr) != ("a", "href")}
    assert loaded == {"favicon.svg", "console.css", "console.js"}
    for ref in loaded:
        assert (console.DIRECTORY / ref).is_file(), ref
    assert {ref for tag, attr, ref in page.refs if tag == "a"} == {"openapi.json"}
    assert '<script src="console.js" defer></script>' in PAGE
    assert "<style" not in PAGE and " style=" not in PAGE
    assert re.findall(r"<script(?![^>]*\bsrc=)", PAGE) == []
    assert re.findall(r"\bon[a-z]+=", PAGE) == []
    assert re.findall(r"https?://", PAGE + STYLES) == []


def test_every_element_the_script_uses_is_in_the_page_with_its_type():
    """The script looks elements up by id, with the type it expects (byId): each one is in
    the page, as that element."""
    page = PageParser()
    page.feed(PAGE)
    tags = dict(page.tagged)
    kinds = {"$": None, "input": "input", "select": "select", "button": "button"}
    lookup = re.compile(r"(?<![\w.$])(\$|input|select|button)\(\"([\w-]+)\"\)")
    used = [(kinds[f], i) for f, i in lookup.findall(SCRIPT)]
    types = {
        "HTMLImageElement": "img",
        "HTMLAnchorElement": "a",
        "HTMLTextAreaElement": "textarea",
        "HTMLDialogElement": "dialog",
    }
    used += [(types[t], i) for i, t in re.findall(r"byId\(\"([\w-]+)\", (\w+)\)", SCRIPT)]
    assert len(used) > 50
    for tag, id_ in used:
        assert id_ in tags, f"#{id_} is not in the page"
        assert tag is None or tags[id_] == tag, f"#{id_} is a <{tags[id_]}>, not a <{tag}>"


def test_the_rotation_grace_starts_at_the_apis_default_within_the_apis_range():
    """One source of truth, KeyRotate: the console's field starts where the API (and
    ``fluxgate keys rotate``) would without one, and allows what the API allows; the words
    beside it are what the script writes there for that value."""
    page = PageParser()
    page.feed(PAGE)
    field = page.attrs["grace"]
    schema = KeyRotate.model_json_schema()["properties"]["grace_seconds"]
    assert KeyRotate().grace_seconds == schema["default"] == 86400
    assert (field["value"], field["min"], field["max"], field["step"]) == (
        str(schema["default"]),
        str(schema["minimum"]),
        str(schema["maximum"]),
        "1",
    )
    assert re.search(r'<p id="grace-echo"[^>]*>1 day</p>', PAGE)


def test_the_script_keeps_credentials_in_memory_and_text_out_of_html():
    """What eslint.config.mjs also enforces (npm run lint:js), checked on the file served."""
    for forbidden in ("localStorage", "sessionStorage", "indexedDB", "document.cookie"):
        assert forbidden not in SCRIPT
    assert "innerHTML" not in SCRIPT and "insertAdjacentHTML" not in SCRIPT
    assert "eval(" not in SCRIPT and "new Function" not in SCRIPT
    assert ".style." not in SCRIPT and 'setAttribute("style"' not in SCRIPT
    assert (console.DIRECTORY / "favicon.svg").read_text().startswith("<svg")
    assert (console.DIRECTORY / "favicon.ico").read_bytes().startswith(b"\x00\x00\x01\x00")


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("_redirects", "/old /console 301\n", "only '/path /path 200'"),
        ("_redirects", "/a/* /index.html 200\n", "only '/path /path 200'"),
        ("_redirects", "/elsewhere /nothing.js 200\n", "not a file served here"),
        ("_headers", "/:name\n  X-A: b\n", "only a path or 'prefix*'"),
        ("_headers", "/*\n  ! X-Removed\n", "expected 'Name: value'"),
        ("_headers", "  X-A: b\n", "expected 'Name: value' under a path"),
        ("picture.png", "", "no media type"),
        ("about.html", "", "only index.html"),
    ],
)
def test_the_local_server_refuses_what_it_would_not_serve_as_cloudflare_does(
    tmp_path: Path, name: str, content: str, problem: str
):
    """Anything in console/ beyond what console.py implements of Cloudflare's asset
    serving stops the local server at startup, instead of answering differently."""
    for file in ("index.html", "console.js"):
        (tmp_path / file).write_text("x")
    (tmp_path / name).write_text(content)
    with pytest.raises(console.ConsoleConfigError, match=re.escape(problem)):
        console.load(tmp_path)


def test_dotfiles_are_neither_served_nor_refused(tmp_path: Path):
    """A file manager's .DS_Store in console/ does not stop the server; like Cloudflare
    (console/.assetsignore), the local server does not serve it."""
    (tmp_path / "index.html").write_text("x")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    site = console.load(tmp_path)
    assert site is not None and "/.DS_Store" not in site.assets
    ignored = (ROOT / "console" / ".assetsignore").read_text().splitlines()
    assert ".*" in ignored


def test_without_the_directory_the_app_has_no_console(tmp_path: Path):
    """The Worker's bundle has no console/ (Cloudflare serves it there): nothing to load."""
    assert console.load(tmp_path / "absent") is None


class PageParser(HTMLParser):
    """The page's structure: elements still open, ids (with their tags) and references."""

    VOID = frozenset({"meta", "link", "img", "input", "br", "hr", "source", "col", "wbr"})

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.ids: list[str] = []
        self.tagged: list[tuple[str, str]] = []
        self.attrs: dict[str, dict[str, str]] = {}  # each element with an id: its attributes
        self.refs: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "id" in values:
            self.ids.append(values["id"])
            self.tagged.append((values["id"], tag))
            self.attrs[values["id"]] = values
        for attr in ("src", "href"):
            if attr in values:
                self.refs.append((tag, attr, values[attr]))
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()


# ---- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = os.environ.get("FLUXGATE_NO_SYSTEM_PACKAGES")
    if reason:
        pytest.skip(f"Chromium could not be installed on this machine: {reason}")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing although .ci/run installed it")
        pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--hide-scrollbars",
        f"--window-size={DESKTOP},900",
        f"--user-data-dir={tmp_path_factory.mktemp('chrome-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    artifacts = os.environ.get("FLUXGATE_ARTIFACTS")
    folder = Path(artifacts) / "console" if artifacts else root / "console-screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    (root / "console-screenshots.txt").write_text(f"{folder}\n")
    return folder


def admin_key(base: str, name: str, **fields: Any) -> dict[str, Any]:
    made = httpx.post(
        f"{base}/v1/admin/keys",
        json={"name": name, **fields},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return dict(made.json())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Console:
    """The page as a person uses it: fields by id, waits on what is visible."""

    def __init__(self, driver: Any, base: str) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver = driver
        self.base = base
        self.wait = WebDriverWait(driver, WAIT)
        driver.get_log("browser")  # what earlier pages logged is theirs
        driver.get(base + "/console")
        self.wait.until(lambda d: d.execute_script("return document.readyState") == "complete")

    def el(self, id_: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.ID, id_)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def fill(self, **fields: Any) -> None:
        for field, value in fields.items():
            element = self.el(field)
            element.clear()
            element.send_keys(str(value))

    def text(self, id_: str) -> str:
        return str(self.js("return document.getElementById(arguments[0]).textContent", id_))

    def visible(self, id_: str) -> bool:
        return bool(self.el(id_).is_displayed())

    def until(self, condition: Any, message: str = "") -> Any:
        return self.wait.until(lambda _: condition(), message)

    def generate(self) -> None:
        self.until(lambda: self.el("generate").is_enabled(), "Generate stays disabled")
        self.el("generate").click()

    def image_loaded(self) -> bool:
        return bool(
            self.js(
                "const i = document.getElementById('image');"
                "return Boolean(i.getAttribute('src')) && i.complete && i.naturalWidth > 0;"
            )
        )

    def wait_for_result(self) -> None:
        self.until(lambda: self.visible("result") or self.visible("error"), "no result")
        assert not self.visible("error"), self.text("error")
        self.until(self.image_loaded, "the image did not render")

    def models(self) -> list[dict[str, Any]]:
        """The model picker's options, in order."""
        return list(
            self.js(
                "return [...document.getElementById('model').options].map((o) => ({"
                "value: o.value, text: o.textContent, disabled: o.disabled,"
                "selected: o.selected}))"
            )
        )

    def wait_for_models(self, ids: list[str]) -> None:
        """Until the picker offers ``ids`` (what ``GET /v1/models`` listed)."""
        self.until(
            lambda: [o["value"] for o in self.models()] == ids,
            f"the picker does not offer {ids}: {self.models()}",
        )

    def choose_model(self, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.el("model")).select_by_value(value)

    def steps_state(self) -> tuple[bool, str]:
        """Whether the steps field is enabled, and what it shows."""
        steps = self.el("steps")
        return bool(steps.is_enabled()), str(steps.get_attribute("value"))

    def choose_files(self, *paths: Path) -> None:
        if self.visible("references-clear"):
            self.el("references-clear").click()
        self.el("references").send_keys("\n".join(str(p) for p in paths))

    def problems(self) -> list[str]:
        """What the browser logged against the page since the last call: policy
        violations and script errors (failed requests the test made on purpose aside)."""
        entries = self.driver.get_log("browser")
        return [
            e["message"]
            for e in entries
            if any(
                word in e["message"]
                for word in ("Content Security Policy", "Refused", "Uncaught", "Error:")
            )
        ]

    def click(self, selector: str) -> None:
        """A click on the element ``selector`` names (a button of the keys' table)."""
        self.js("document.querySelector(arguments[0]).click()", selector)

    def press(self, key: str) -> None:
        """A key pressed where the focus is."""
        self.driver.switch_to.active_element.send_keys(key)

    def focused(self) -> str:
        return str(self.js("return document.activeElement.id"))

    def question(self) -> str:
        """What the confirmation asks, once it is open (a modal dialog)."""
        self.until(
            lambda: self.js("return document.getElementById('confirm').matches(':modal')"),
            "nothing was asked",
        )
        return self.text("confirm-message")

    def asking(self) -> bool:
        return bool(self.js("return document.getElementById('confirm').open"))

    def record_changes(self) -> None:
        """From now on, every request of the page other than a GET goes to ``changes()``."""
        self.js(
            "window.changes = []; const send = window.fetch;"
            "window.fetch = (resource, options = {}) => {"
            "  if ((options.method || 'GET') !== 'GET') {"
            "    window.changes.push([options.method, new URL(resource).pathname,"
            "      options.body ? JSON.parse(options.body) : null]);"
            "  }"
            "  return send(resource, options);"
            "};"
        )

    def changes(self) -> list[list[Any]]:
        return list(self.js("return window.changes"))

    def tier_of(self, key_id: str) -> str:
        """The Tier cell of the key's row in the keys' table."""
        return str(
            self.js(
                "return document.querySelector("
                "`#keys-body tr[data-id='${arguments[0]}'] td[data-label='Tier']`).textContent",
                key_id,
            )
        )

    def storage_is_empty(self) -> bool:
        count = self.js("return localStorage.length + sessionStorage.length")
        return count == 0 and self.driver.get_cookies() == []


def test_a_person_generates_synchronously_and_asynchronously(browser, server, runtime):
    """Sync (MISS, then HIT), download and copy, async with progress, then a failure that
    replaces the result; the banner says when the model is the placeholder."""
    key = server.new_key("console-generate")
    page = Console(browser, server.base)
    health = httpx.get(f"{server.base}/healthz", timeout=30).json()
    page.until(lambda: page.text("server").startswith("Model "), "no /healthz line")
    assert page.visible("placeholder-banner") == health["model"].startswith("placeholder")
    if runtime == "local":  # the Worker cannot tell that its AI is the stand-in
        banner = page.el("placeholder-banner").text
        assert "Placeholder mode: images are offline placeholders, not FLUX.2" in banner

    prompt = unique("a paper crane on a desk")
    page.fill(key=key, prompt=prompt, width=512, height=384, steps=4, seed=7)
    page.generate()
    page.wait_for_result()
    assert page.js(
        "const i = document.getElementById('image'); return [i.naturalWidth, i.naturalHeight]"
    ) == [512, 384]
    model = "placeholder/flux-2-dev" if runtime == "local" else FLUX_MODEL_ID
    assert page.text("meta-cache") == "MISS" and page.text("meta-seed") == "7"
    assert page.text("meta-model") == model and page.text("meta-id").startswith("img_")
    assert page.text("meta-size") == "512\u00d7384, 4 steps"
    assert page.text("meta-cost").startswith("charged $0.")
    assert "Generated in" in page.text("status") and page.el("generate").is_enabled()
    assert not page.visible("error") and not page.visible("progress")

    # download link and copy: the signed URL
    url = page.el("url").get_attribute("value")
    assert "/v1/files/images/" in url and "sig=" in url and "exp=" in url
    download = page.el("download")
    assert download.get_attribute("href") == url
    assert download.get_attribute("download").startswith(page.text("meta-id"))
    fetched = httpx.get(url, timeout=30)
    assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": server.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    page.el("copy").click()
    page.until(lambda: page.text("copied") == "Copied.", "Copy URL did not copy")
    copied = browser.execute_async_script(
        "navigator.clipboard.readText().then(arguments[0], (e) => arguments[0]('! ' + e))"
    )
    assert copied == url
    # without the clipboard API, the read-only field is selected for the person to copy
    page.js("navigator.clipboard.writeText = () => Promise.reject(new Error('denied'))")
    page.js("document.getElementById('copied').textContent = ''")
    page.el("copy").click()
    page.until(lambda: page.text("copied") != "", "Copy URL said nothing")
    assert page.js("return document.activeElement.id") == "url"
    selected = "const u = document.getElementById('url'); return u.selectionEnd - u.selectionStart"
    assert page.js(selected) == len(url)

    # the same request again is a cache hit, and free
    page.generate()
    page.until(lambda: page.text("meta-cache") == "HIT", "no cache HIT on the repeat")
    assert page.text("meta-cost").startswith("charged $0.00000")

    # async: Prefer: respond-async, a job polled until it succeeds, progress meanwhile
    page.js(
        """
        window.seen = [];
        const status = document.getElementById('status');
        const progress = document.getElementById('progress');
        const button = document.getElementById('generate');
        new MutationObserver(() => window.seen.push({
          text: status.textContent, disabled: button.disabled,
          progress: progress.getBoundingClientRect().width > 0,
        })).observe(status, {childList: true, characterData: true, subtree: true});
        """
    )
    page.el("async").click()
    page.fill(seed=8)
    page.generate()
    page.until(lambda: "succeeded in" in page.text("status"), "the job did not succeed")
    page.wait_for_result()
    assert page.text("meta-cache") == "MISS" and page.text("meta-seed") == "8"
    seen = page.js("return window.seen")
    running = [s for s in seen if s["progress"] and s["disabled"]]
    assert running, seen
    assert any(re.search(r"^Job job_\S+ (queued|running): \d+\.\d s$", s["text"]) for s in running)
    assert all(re.search(r"\d+\.\d s", s["text"]) for s in running)
    page.el("async").click()

    # a failure replaces the result: no image, no metadata, the error's code and message
    wrong = httpx.post(
        f"{server.base}/v1/images/generations",
        headers={"Authorization": "Bearer fgk_wrong"},
        data={"prompt": "x"},
        timeout=30,
    )
    has_request_id = "request_id" in wrong.json()["error"] or "x-request-id" in wrong.headers
    page.fill(key="fgk_wrong")
    page.generate()
    page.until(lambda: page.visible("error"), "no error shown")
    assert page.text("error-code") == "invalid_api_key"
    assert page.text("error-status") == "(HTTP 401)" and page.text("error-message")
    assert not page.visible("result") and page.el("image").get_attribute("src") is None
    assert page.text("meta-id") == "" and page.el("url").get_attribute("value") == ""
    assert page.el("download").get_attribute("href") is None
    assert page.visible("error-request") == has_request_id
    if has_request_id:  # the request id others are adding to error bodies
        assert page.text("error-request-id").strip()
    assert page.el("generate").is_enabled()

    # credentials stay in memory: not in storage, cookies or the address bar
    assert page.storage_is_empty() and key not in browser.current_url
    assert page.problems() == []


def test_a_signed_url_of_another_origin_shows_through_the_pages_own(
    browser, runtime, tmp_path_factory
):
    """With PUBLIC_BASE_URL on another origin and under a path (a custom domain in front of
    the server), the page still shows the image and follows the job: the same signed path
    through its own origin, under a policy that never names PUBLIC_BASE_URL. The URL to
    copy is the signed one, as the API gave it."""
    public = "https://images.example.com/fluxgate"
    folder = tmp_path_factory.mktemp(f"console-public-{runtime}")
    with serve(runtime, folder, public_base_url=public) as server:
        page = Console(browser, server.base)
        page.fill(key=server.new_key("console-public"), prompt=unique("a harbour at dawn"))
        page.fill(width=512, height=384, steps=4, seed=5)
        page.generate()
        page.wait_for_result()
        url = page.el("url").get_attribute("value")
        assert url.startswith(f"{public}/v1/files/images/") and "sig=" in url
        shown = page.el("image").get_attribute("src")
        assert shown == server.base + url.removeprefix(public)
        assert page.el("download").get_attribute("href") == shown

        page.el("async").click()
        page.fill(seed=6)
        page.generate()
        page.until(lambda: "succeeded in" in page.text("status"), "the job did not succeed")
        page.wait_for_result()
        assert page.el("url").get_attribute("value").startswith(f"{public}/v1/files/")
        assert page.problems() == []


SHORT_NAMES = ["flux-2-dev", "flux-2-klein-4b", "flux-2-klein-9b"]


def served(runtime: str, short: str) -> str:
    """What a server of ``runtime`` serves ``short`` as: the offline placeholder locally (no
    Cloudflare credentials), the Workers AI id on the Worker (its host's AI double)."""
    return f"placeholder/{short}" if runtime == "local" else f"@cf/black-forest-labs/{short}"


def listed_ids(base: str, key: str) -> list[str]:
    listed = httpx.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert listed.status_code == 200, listed.text
    return [card["id"] for card in listed.json()["data"]]


def test_a_person_picks_the_model(browser, server, runtime):
    """The picker lists what ``GET /v1/models`` answers for the key (the short names when it
    cannot); klein takes no steps, so its steps field is disabled and not sent; the choice
    is sent as ``model`` on the sync and the async paths, and the result names it."""
    key = server.new_key("console-models")
    dev, klein = served(runtime, "flux-2-dev"), served(runtime, "flux-2-klein-4b")
    ids = [served(runtime, short) for short in SHORT_NAMES]
    assert listed_ids(server.base, key) == ids
    page = Console(browser, server.base)

    # before a key, and with a key the server refuses: the short names, dev chosen
    assert [o["value"] for o in page.models()] == SHORT_NAMES
    assert [o["value"] for o in page.models() if o["selected"]] == ["flux-2-dev"]
    assert "Enter the API key" in page.text("model-hint")
    page.fill(key="fgk_wrong", prompt=unique("a kite over the dunes"))  # leaving the key field
    page.until(lambda: "could not be listed" in page.text("model-hint"), "no fallback note")
    assert "invalid_api_key" in page.text("model-hint")
    assert [o["value"] for o in page.models()] == SHORT_NAMES
    page.choose_model("flux-2-klein-4b")
    assert page.steps_state() == (False, "4")
    page.choose_model("flux-2-dev")

    # a good key: the served names, display names with a price, the default chosen
    page.fill(key=key, width=512, height=384, steps=7, seed=21)
    page.wait_for_models(ids)
    options = {o["value"]: o for o in page.models()}
    assert [v for v, o in options.items() if o["selected"]] == [dev]
    assert not any(o["disabled"] for o in options.values())
    assert options[dev]["text"] == "FLUX.2 [dev] \u00b7 $0.00041/tile/step"
    assert options[klein]["text"] == "FLUX.2 [klein] 4B \u00b7 $0.000287/tile"
    assert options[served(runtime, "flux-2-klein-9b")]["text"] == (
        "FLUX.2 [klein] 9B \u00b7 $0.015/first MP"
    )
    assert page.steps_state() == (True, "7")
    assert "Estimated $0.00287 for 512\u00d7384, 7 steps." in page.text("model-hint")

    # klein: steps disabled at its fixed 4 (a request sending steps would be refused)
    page.choose_model(klein)
    assert page.steps_state() == (False, "4")
    hint = page.text("model-hint")
    assert "fixed 4-step schedule" in hint and "Estimated $0.000287 for 512\u00d7384." in hint
    assert ("offline placeholder" in hint) == (runtime == "local")
    page.generate()
    page.wait_for_result()
    assert page.text("meta-model") == klein and page.text("meta-seed") == "21"
    assert page.text("meta-size") == "512\u00d7384, 4 steps"
    assert "estimated $0.00029" in page.text("meta-cost")

    # the async path sends the model too
    page.el("async").click()
    page.fill(seed=22)
    page.generate()
    page.until(lambda: "succeeded in" in page.text("status"), "the job did not succeed")
    page.wait_for_result()
    assert page.text("meta-model") == klein and page.text("meta-seed") == "22"
    assert page.text("meta-size") == "512\u00d7384, 4 steps"
    page.el("async").click()

    # back to dev: steps enabled again, with the person's 7
    page.choose_model(dev)
    assert page.steps_state() == (True, "7")
    page.generate()
    page.until(lambda: page.text("meta-seed") == "22" and page.text("meta-model") == dev)
    page.wait_for_result()
    assert page.text("meta-size") == "512\u00d7384, 7 steps"

    # a wrong key again keeps the choice, under its short name
    page.choose_model(klein)
    page.fill(key="fgk_wrong")
    page.el("prompt").click()
    page.until(lambda: "could not be listed" in page.text("model-hint"), "no fallback note")
    assert [o["value"] for o in page.models() if o["selected"]] == ["flux-2-klein-4b"]
    assert page.steps_state() == (False, "4")
    assert page.problems() == []


def test_models_the_keys_tier_does_not_allow_are_disabled(browser, server, runtime):
    """A tier limited to klein 4B: the other models are listed but cannot be picked, and
    klein (not the default) is chosen."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    current = httpx.get(f"{server.base}/v1/admin/policy", headers=admin, timeout=30).json()
    tiers = current["tiers"]
    if "drafts" not in tiers:  # once per server
        tiers["drafts"] = {"models": {"flux-2-klein-4b": {}}}
        stored = httpx.put(
            f"{server.base}/v1/admin/policy",
            json={**current, "version": current["version"] + 1, "tiers": tiers},
            headers=admin,
            timeout=30,
        )
        assert stored.status_code == 200, stored.text
    made = admin_key(server.base, unique("drafts"), tier="drafts")
    klein = served(runtime, "flux-2-klein-4b")
    page = Console(browser, server.base)
    page.fill(key=made["key"], prompt=unique("a draft of a harbour"), width=256, height=256)
    page.wait_for_models([served(runtime, short) for short in SHORT_NAMES])
    options = page.models()
    assert [o["value"] for o in options if o["disabled"]] == [
        served(runtime, "flux-2-dev"),
        served(runtime, "flux-2-klein-9b"),
    ]
    assert all("(not allowed for this key)" in o["text"] for o in options if o["disabled"])
    assert [o["value"] for o in options if o["selected"]] == [klein]
    assert page.steps_state() == (False, "4")
    page.generate()
    page.wait_for_result()
    assert page.text("meta-model") == klein and page.text("meta-size") == "256\u00d7256, 4 steps"
    assert page.problems() == []


def test_reference_images_are_previewed_and_checked_in_the_page(
    browser, server, tmp_path: Path
) -> None:
    key = server.new_key("console-references")
    files = {
        "small.png": image_bytes("PNG", 200, 150),
        "small.jpg": image_bytes("JPEG", 64, 48),
        "small.webp": image_bytes("WEBP", 100, 100),
        "big.png": image_bytes("PNG", 600, 600),
        "heavy.png": image_bytes("PNG", 100, 100) + b"\0" * (1024 * 1024 + 1),
        "anim.gif": image_bytes("GIF", 32, 32),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    p = {name: tmp_path / name for name in files}

    page = Console(browser, server.base)
    page.fill(key=key, prompt=unique("in this style"), width=512, height=512, steps=2)

    page.choose_files(p["small.png"], p["small.jpg"], p["small.webp"])
    page.until(lambda: page.js("return document.querySelectorAll('#thumbs li').length") == 3)
    captions = page.text("thumbs")
    assert "200\u00d7150" in captions and "64\u00d748" in captions and "100\u00d7100" in captions
    page.until(
        lambda: page.js(
            "return [...document.querySelectorAll('#thumbs img')]"
            ".every((i) => i.complete && i.naturalWidth > 0)"
        ),
        "the previews (blob: URLs) did not render",
    )
    assert not page.visible("references-error") and page.el("generate").is_enabled()

    refusals = {
        "big.png": "600\u00d7600: each side must be under 512 px",
        "heavy.png": "over the 1 MiB limit",
        "anim.gif": "not a PNG, JPEG or WebP image",
    }
    for name, reason in refusals.items():
        page.choose_files(p[name])
        page.until(lambda: page.visible("references-error"), f"{name} was not refused")
        assert reason in page.text("references-error") and name in page.text("references-error")
        assert page.js("return document.querySelectorAll('#thumbs li.bad').length") == 1
        assert not page.el("generate").is_enabled()
        page.js("document.getElementById('form').requestSubmit()")  # Enter in a field
        assert page.text("status") == "" and not page.visible("result")

    page.choose_files(*(p[n] for n in ("small.png", "small.jpg", "small.webp", "small.png")))
    page.until(lambda: page.js("return document.querySelectorAll('#thumbs li').length") == 4)
    assert page.el("generate").is_enabled()
    page.el("references").send_keys(str(p["small.jpg"]))  # a fifth
    page.until(lambda: "At most 4 reference images" in page.text("references-error"))
    assert not page.el("generate").is_enabled()

    page.choose_files(p["small.png"])
    page.until(lambda: page.el("generate").is_enabled(), "a good image is still refused")
    assert not page.visible("references-error")
    page.generate()
    page.wait_for_result()
    assert page.text("meta-references") == "1"
    assert page.problems() == []


def test_an_admin_creates_rotates_and_revokes_a_key(browser, server):
    """Rotate and Revoke each ask first, in the page's dialog, saying what will happen;
    cancelled (the button or Escape), nothing is sent. Rotation's grace starts at the API's
    default (a day): the old key keeps working after it."""
    from selenium.webdriver.common.keys import Keys

    base = server.base
    page = Console(browser, base)
    page.fill(**{"admin-token": "not-the-admin-token"})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-error"), "a wrong admin token was not reported")
    assert "invalid_admin_token" in page.text("admin-error")
    assert not page.visible("admin-body")

    page.fill(**{"admin-token": ADMIN})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-body"), "the admin section did not open")
    assert not page.visible("admin-error")

    name = unique("console-made")
    page.fill(**{"new-name": name})
    page.el("create").click()
    page.until(lambda: page.visible("new-key"), "the new key was not shown")
    first = page.el("new-key-value").get_attribute("value")
    assert first.startswith("fgk_") and name in page.text("new-key-title")
    find_row = (
        "const row = [...document.querySelectorAll('#keys-body tr')]"
        ".find((tr) => tr.textContent.includes(arguments[0])); return row && row.dataset.id"
    )
    key_id = page.until(lambda: page.js(find_row, name), "the new key is not in the table")
    assert key_id in page.text("new-key-title")
    row = f"#keys-body tr[data-id='{key_id}']"

    # "Use for generating" puts it in the form; dismissing removes it from the page
    page.el("new-key-use").click()
    assert page.el("key").get_attribute("value") == first
    page.fill(key="")
    page.el("new-key-dismiss").click()
    assert not page.visible("new-key")
    shown = page.js(
        "return document.body.innerText + [...document.querySelectorAll('input')]"
        ".map((i) => i.value).join(' ')"
    )
    assert first not in shown

    # a key without a tier of its own is shown with the policy's default tier
    assert page.tier_of(key_id) == "standard"

    def status(key: str) -> int:
        """What the API answers a request with ``key``."""
        auth = {"Authorization": f"Bearer {key}"}
        return httpx.get(f"{base}/v1/usage", headers=auth, timeout=30).status_code

    # the rotation grace starts at the API's default, in words beside it
    assert page.el("grace").get_attribute("value") == str(KeyRotate().grace_seconds) == "86400"
    assert page.text("grace-echo") == "1 day"
    page.record_changes()

    # Rotate asks first, saying what will happen; Cancel (where the focus starts) sends
    # nothing and the key keeps working; Escape cancels too
    rotate = f"{row} button[data-action=rotate]"
    page.click(rotate)
    asked = page.question()
    assert asked.startswith(
        f"Rotate key {name} ({key_id})? A new key is shown once; the current key keeps "
        "working for 1 day (until "
    )
    assert asked.endswith("), then stops, and client tokens it minted stop with it.")
    assert page.focused() == "confirm-cancel"
    page.el("confirm-cancel").click()
    page.until(lambda: not page.asking(), "Cancel did not close the question")
    page.click(rotate)
    page.question()
    page.press(Keys.ESCAPE)
    page.until(lambda: not page.asking(), "Escape did not close the question")
    assert page.changes() == [] and not page.visible("new-key")
    assert status(first) == 200

    # Confirm rotates with the default grace: a new key for the same id, and the old one
    # still works (for a day)
    page.click(rotate)
    page.question()
    page.el("confirm-ok").click()
    page.until(lambda: page.visible("new-key"), "the rotated key was not shown")
    second = page.el("new-key-value").get_attribute("value")
    assert second.startswith("fgk_") and second != first
    assert "Rotated" in page.text("new-key-title")
    assert page.changes() == [["POST", f"/v1/admin/keys/{key_id}/rotate", {"grace_seconds": 86400}]]
    assert status(first) == 200 and status(second) == 200

    # with no grace, the question says the current key stops at once, and it does
    page.fill(grace=0)
    assert page.text("grace-echo") == "None: a rotated key stops at once."
    page.click(rotate)
    assert page.question() == (
        f"Rotate key {name} ({key_id})? A new key is shown once; the current key stops "
        "working at once, and so do the client tokens it minted."
    )
    page.el("confirm-ok").click()
    page.until(lambda: page.el("new-key-value").get_attribute("value") not in ("", second))
    third = page.el("new-key-value").get_attribute("value")
    assert status(second) == 401 and status(first) == 401 and status(third) == 200

    # a grace the API would refuse is said at once, and nothing is asked or sent
    page.fill(grace=31 * 86400)
    assert page.text("grace-echo").startswith("Enter a whole number of seconds from 0 to 2592000")
    page.click(rotate)
    page.until(lambda: page.visible("admin-error"), "an out-of-range grace was not reported")
    assert "Not rotated: the rotation grace must be" in page.text("admin-error")
    assert not page.asking() and len(page.changes()) == 2

    # Revoke asks too, and says that it cannot be undone; Escape sends nothing
    revoke = f"{row} button[data-action=revoke]"
    page.click(revoke)
    assert page.question() == (
        f"Revoke key {name} ({key_id})? The key and every client token it minted stop "
        "working at once (within about a minute everywhere). This cannot be undone."
    )
    assert page.el("confirm-ok").text == "Revoke"
    page.press(Keys.ESCAPE)
    page.until(lambda: not page.asking(), "Escape did not close the question")
    assert len(page.changes()) == 2 and status(third) == 200

    # confirmed from the keyboard (Tab from Cancel to Revoke, Enter), the key is revoked
    page.click(revoke)
    page.question()
    page.press(Keys.TAB)
    assert page.focused() == "confirm-ok"
    page.press(Keys.ENTER)
    page.until(
        lambda: page.js(f'return document.querySelector("{row}").textContent').find("revoked") >= 0,
        "the key is not shown as revoked",
    )
    assert page.changes()[2:] == [["POST", f"/v1/admin/keys/{key_id}/revoke", None]]
    assert page.js(f'return document.querySelector("{revoke}").disabled') is True
    assert status(third) == 401

    # the spend and gallery calls answer or say why, without breaking the page
    usage = httpx.get(
        f"{base}/v1/admin/usage",
        params={"from": "2020-01-01", "to": "2020-01-01"},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=30,
    )
    if usage.status_code != 200:
        page.until(lambda: page.visible("spend-error"), "a failing usage call was not shown")
        assert str(usage.status_code) in page.text("spend-error")
    assert page.storage_is_empty() and ADMIN not in browser.current_url
    assert page.problems() == []


def test_the_keys_tiers_are_named_as_the_policy_names_them(browser, server):
    """The Tier column says which tier a request with the key meets, in the policy's
    words: the default tier for a key that names none, and for a key whose tier the policy
    no longer has, the default tier marked as a fallback from the one it names."""
    base = server.base
    admin = {"Authorization": f"Bearer {ADMIN}"}

    def replace_policy(change: Any) -> None:
        current = httpx.get(f"{base}/v1/admin/policy", headers=admin, timeout=30).json()
        tiers = change(dict(current["tiers"]))
        doc = {**current, "version": current["version"] + 1, "tiers": tiers}
        stored = httpx.put(f"{base}/v1/admin/policy", json=doc, headers=admin, timeout=30)
        assert stored.status_code == 200, stored.text

    gone = f"gold_{uuid.uuid4().hex[:8]}"
    replace_policy(lambda tiers: {**tiers, gone: {}})
    plain = admin_key(base, unique("plain"))
    pinned = admin_key(base, unique("pinned"), tier="standard")
    orphan = admin_key(base, unique("orphan"), tier=gone)
    replace_policy(lambda tiers: {name: t for name, t in tiers.items() if name != gone})
    assert plain["tier"] is None and orphan["tier"] == gone

    page = Console(browser, base)
    page.fill(**{"admin-token": ADMIN})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-body"), "the admin section did not open")
    page.until(
        lambda: page.js(
            "return Boolean(document.querySelector(arguments[0]))", f"tr[data-id='{orphan['id']}']"
        ),
        "the keys are not in the table",
    )
    assert page.tier_of(plain["id"]) == "standard"
    assert page.tier_of(pinned["id"]) == "standard"
    assert page.tier_of(orphan["id"]) == f"standard (fallback from '{gone}')"
    marked = page.js("return [...document.querySelectorAll('#keys-body .tier-fallback')].length")
    assert marked >= 1
    assert "default" not in page.js(
        "return [...document.querySelectorAll(\"#keys-body td[data-label='Tier']\")]"
        ".map((td) => td.textContent).join(' ')"
    )
    assert page.problems() == []


def test_spend_chart_and_gallery_show_a_keys_generation(browser, server):
    """Needs ``GET /v1/admin/usage`` and ``GET /v1/admin/keys/{id}/images``."""
    base = server.base
    made = admin_key(base, unique("spender"))
    page = Console(browser, base)
    page.fill(key=made["key"], prompt=unique("a lighthouse"), width=512, height=512, steps=3)
    page.fill(seed=11)
    page.generate()
    page.wait_for_result()
    assert page.text("meta-cache") == "MISS"
    signed = urlsplit(page.el("url").get_attribute("value"))

    page.fill(**{"admin-token": ADMIN})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-body"), "the admin section did not open")

    # a 404 from the gallery (no such key) is a message, not a broken page
    page.js(
        "const s = document.getElementById('gallery-key');"
        "s.add(new Option('missing', 'key_0000000000000000'));"
        "s.value = 'key_0000000000000000'; s.dispatchEvent(new Event('change'));"
    )
    page.until(lambda: page.visible("gallery-error"), "a 404 gallery was not reported")
    assert "404" in page.text("gallery-error") and page.visible("admin-body")

    # spend: bars for today, a row in today's table (depends on /v1/admin/usage)
    bars = f"#chart svg rect.bar[data-key='{made['id']}']"
    page.until(
        lambda: page.js(f'return document.querySelectorAll("{bars}").length') > 0,
        f"no bar for the key: {page.text('spend-error')}",
    )
    assert page.js(f"return Number(document.querySelector(\"{bars}\").getAttribute('height'))") > 0
    today = page.js(
        f"return document.querySelector(\"#today-body tr[data-key='{made['id']}']\").innerText"
    )
    assert "$0." in today and "1" in today
    page.js(
        "const s = document.getElementById('spend-key');"
        f"s.value = '{made['id']}'; s.dispatchEvent(new Event('change'));"
    )
    keys_drawn = page.js(
        "return [...new Set([...document.querySelectorAll('#chart rect.bar')]"
        ".map((r) => r.dataset.key))]"
    )
    assert keys_drawn == [made["id"]]

    # gallery: the image just made (depends on /v1/admin/keys/{id}/images)
    page.js(
        "const s = document.getElementById('gallery-key');"
        f"s.value = '{made['id']}'; s.dispatchEvent(new Event('change'));"
    )
    page.until(
        lambda: page.js("return document.querySelectorAll('#gallery img').length") > 0,
        f"no image in the gallery: {page.text('gallery-error')}",
    )
    sources = page.js("return [...document.querySelectorAll('#gallery img')].map((i) => i.src)")
    assert signed.path in [urlsplit(src).path for src in sources]
    # the gallery's images load as they come into view (loading=lazy), below every key's row
    page.js("document.getElementById('gallery').scrollIntoView({ block: 'center' })")
    page.until(
        lambda: page.js(
            "return [...document.querySelectorAll('#gallery img')]"
            ".every((i) => i.complete && i.naturalWidth > 0)"
        ),
        "gallery images did not render",
    )
    assert page.problems() == []


def top_users_of(page: Console, body: str) -> list[list[str]]:
    """The rows of a top end users table (its tbody's id): user, key id, images, spent."""
    return list(
        page.js(
            "return [...document.querySelectorAll(`#${arguments[0]} tr[data-user]`)].map((tr) =>"
            " [tr.dataset.user, tr.dataset.key,"
            "  tr.querySelector(\"td[data-label='Images']\").textContent,"
            "  tr.querySelector(\"td[data-label='Spent']\").textContent])",
            body,
        )
    )


def test_top_end_users_of_a_key_in_the_console(browser, server):
    """Two end users of one key generate through the console with client tokens: each sees
    their own spend, budget and rate window; the key sees both, most first; so does the
    admin's spend section, for that key and among all keys. Needs ``top_users`` of
    ``GET /v1/usage`` and ``GET /v1/admin/usage``."""
    base = server.base
    made = admin_key(
        base,
        unique("app"),
        overrides={
            "user_rate_limit": {"limit": 10, "period": 3600},
            "user_daily_budget_usd": 5,
        },
    )
    alice, bob = unique("alice"), unique("bob")

    def token(subject: str) -> str:
        minted = httpx.post(
            f"{base}/v1/tokens",
            json={"subject": subject},
            headers={"Authorization": f"Bearer {made['key']}"},
            timeout=30,
        )
        assert minted.status_code == 201, minted.text
        return str(minted.json()["token"])

    page = Console(browser, base)
    prompt = unique("a kite over the dunes")
    for subject, seeds in ((alice, (21, 22)), (bob, (23,))):
        page.fill(key=token(subject))
        for seed in seeds:
            page.fill(prompt=prompt, width=512, height=512, steps=3, seed=seed)
            page.generate()
            page.wait_for_result()
            assert page.text("meta-cache") == "MISS"
        # the token's own end user: their spend, budget and what is left of their window
        title, left = f"You ({subject})", f"{10 - len(seeds)} of 10 per 1 hour"
        page.until(
            lambda title=title, left=left: (
                page.text("usage-title") == title and left in page.text("usage-summary")
            ),
            f"no usage of {subject}: {page.text('usage')}",
        )
        summary = page.text("usage-summary")
        assert f", {len(seeds)} image(s)30 days" in summary, summary  # today
        assert re.search(r"Budget left\$4\.99\d* of \$5\.00 today", summary), summary
        assert not page.visible("usage-users")

    # the key itself: its end users, most first
    page.fill(key=made["key"])
    page.js("document.getElementById('key').dispatchEvent(new Event('change'))")
    page.until(lambda: page.text("usage-title") == "This key", page.text("usage"))
    page.until(lambda: len(top_users_of(page, "usage-users-body")) == 2, page.text("usage"))
    rows = top_users_of(page, "usage-users-body")
    assert [(user, images) for user, _, images, _ in rows] == [(alice, "2"), (bob, "1")]
    assert all(spent.startswith("$0.") for *_, spent in rows), rows
    assert "3 image(s)" in page.text("usage-summary")

    # the admin: the chosen key's end users, then all keys' (each row naming its key)
    page.fill(**{"admin-token": ADMIN})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-body"), "the admin section did not open")
    page.until(
        lambda: page.js(
            "return [...document.getElementById('spend-key').options]"
            ".some((o) => o.value === arguments[0])",
            made["id"],
        ),
        f"the key is not in the spend picker: {page.text('spend-error')}",
    )
    page.js(
        "const s = document.getElementById('spend-key');"
        "s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        made["id"],
    )
    chosen = top_users_of(page, "top-users-body")
    assert [(user, images) for user, _, images, _ in chosen] == [(alice, "2"), (bob, "1")]
    assert [spent for *_, spent in chosen] == [spent for *_, spent in rows]
    assert "Top end users" in page.text("top-users-caption")
    page.js(
        "const s = document.getElementById('spend-key');"
        "s.value = ''; s.dispatchEvent(new Event('change'));"
    )
    everyone = top_users_of(page, "top-users-body")
    assert [(u, i) for u, key, i, _ in everyone if key == made["id"]] == [(alice, "2"), (bob, "1")]
    assert made["id"] in page.text("top-users-body")
    assert page.problems() == []


def layout_report(page: Console) -> dict[str, Any]:
    return dict(
        page.js(
            """
            const root = document.documentElement;
            const width = root.clientWidth;
            const outside = [];
            for (const el of document.body.querySelectorAll('*')) {
              const r = el.getBoundingClientRect();
              if (r.width === 0 && r.height === 0) continue;
              if (r.left < -0.5 || r.right > width + 0.5) {
                outside.push(`${el.tagName.toLowerCase()}#${el.id}.${el.className}` +
                  ` ${Math.round(r.left)}..${Math.round(r.right)}`);
              }
            }
            return {width, inner: window.innerWidth, scroll: root.scrollWidth,
                    body: document.body.scrollWidth, outside: outside.slice(0, 20),
                    image: document.getElementById('image').getBoundingClientRect().width};
            """
        )
    )


def full_page_png(driver: Any) -> bytes:
    width, height = driver.execute_script(
        "const r = document.documentElement; return [r.scrollWidth, r.scrollHeight];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])


def filled_console(browser: Any, base: str, made: dict[str, Any]) -> Console:
    """The console with every section showing: a result, keys, spend and the gallery."""
    page = Console(browser, base)
    page.fill(key=made["key"], prompt="a fox in the snow, woodcut", seed=5, steps=3)
    page.fill(width=768, height=512)
    page.wait_for_models(listed_ids(base, made["key"]))
    page.generate()
    page.wait_for_result()
    page.fill(**{"admin-token": ADMIN})
    page.el("admin-load").click()
    page.until(lambda: page.visible("admin-body"), "the admin section did not open")
    page.js(
        "const s = document.getElementById('gallery-key');"
        "s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        made["id"],
    )
    page.until(lambda: page.text("chart-caption") or page.visible("spend-error"))
    page.until(
        lambda: (
            page.js("return document.querySelectorAll('#gallery img').length")
            or page.visible("gallery-error")
        )
    )
    time.sleep(0.3)  # let the gallery's images and the layout settle for the screenshot
    return page


def test_the_console_fits_a_phone_and_a_desktop(
    browser, server, runtime, screenshots, record_property
):
    """No horizontal scrolling, nothing wider than the viewport, the image as wide as its
    column; full-page screenshots of both widths with every section filled."""
    made = admin_key(server.base, unique("layout"))
    try:
        for width, mobile in ((DESKTOP, False), (PHONE, True)):
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": width,
                    "height": 844 if mobile else 900,
                    "deviceScaleFactor": 2 if mobile else 1,
                    "mobile": mobile,
                },
            )
            page = filled_console(browser, server.base, made)
            report = layout_report(page)
            assert report["width"] == width, report
            assert report["scroll"] <= report["inner"] and report["body"] <= width, report
            assert report["outside"] == [], report
            assert page.problems() == []
            picker = page.js(
                "const r = document.getElementById('model').getBoundingClientRect();"
                "return [r.left, r.right, r.height];"
            )
            assert 0 <= picker[0] < picker[1] <= width and picker[2] > 20, picker
            assert "FLUX.2 [dev]" in page.js(
                "const s = document.getElementById('model');"
                "return s.options[s.selectedIndex].textContent"
            )
            if mobile:
                assert report["inner"] == PHONE, report
                assert report["image"] > 300, report
            else:
                assert report["image"] > 450, report
            shot = screenshots / f"console-{runtime}-{width}.png"
            shot.write_bytes(full_page_png(browser))
            assert shot.stat().st_size > 20_000
            print(f"console screenshot: {shot}")
            record_property("screenshot", str(shot))  # listed in the run's summary
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
