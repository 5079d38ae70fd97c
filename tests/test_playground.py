"""The playground page: served by the app, and used for real in headless Chromium."""

import os
import shutil
from pathlib import Path

import pytest

from fluxgate import FLUX_MODEL_ID

from .doubles import image_bytes
from .servers import serve

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def test_the_page_and_its_script_are_served_with_a_strict_policy(client):
    for path in ("/", "/playground"):
        page = client.get(path)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script src="playground.js"></script>' in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    script = client.get("/playground.js")
    assert script.status_code == 200 and "text/javascript" in script.headers["content-type"]
    assert "localStorage" not in script.text and "sessionStorage" not in script.text
    assert "document.cookie" not in script.text


@pytest.fixture
def browser(tmp_path):
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
        "--window-size=1200,1000",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def server(runtime, tmp_path):
    with serve(runtime, tmp_path) as running:
        yield running.base, running.new_key("browser")


def test_a_person_generates_an_image_in_the_playground(browser, server, runtime, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, key = server
    reference = tmp_path / "reference.png"
    reference.write_bytes(image_bytes("PNG", 200, 150))

    browser.get(base + "/")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.ID, "prompt").send_keys("a paper crane on a desk")
    for field, value in (("width", "512"), ("height", "384"), ("steps", "4"), ("seed", "7")):
        element = browser.find_element(By.ID, field)
        element.clear()
        element.send_keys(value)
    browser.find_element(By.ID, "references").send_keys(str(reference))
    browser.find_element(By.ID, "generate").click()

    wait = WebDriverWait(browser, 30)
    wait.until(ec.visibility_of_element_located((By.ID, "result")))
    wait.until(
        lambda d: d.execute_script(
            "const i = document.getElementById('image'); return i.complete && i.naturalWidth > 0;"
        )
    )
    natural = browser.execute_script(
        "const i = document.getElementById('image'); return [i.naturalWidth, i.naturalHeight];"
    )
    assert natural == [512, 384]
    meta = browser.find_element(By.ID, "meta").text
    # The Worker cannot tell that the host's AI double answers for flux-2-dev (see README).
    model = "placeholder" if runtime == "local" else FLUX_MODEL_ID
    assert "cache      MISS" in meta and "seed       7" in meta and f"model      {model}" in meta
    assert browser.find_element(By.ID, "error").get_attribute("class") == "hidden"

    # the key stays in memory: not in storage, cookies or the address bar
    assert browser.execute_script("return localStorage.length + sessionStorage.length") == 0
    assert browser.get_cookies() == [] and key not in browser.current_url

    shot = tmp_path / "playground.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 10_000
    screenshots = os.environ.get("FLUXGATE_SCREENSHOT_DIR")
    if screenshots:
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(screenshots) / "playground.png")

    # the same request again is a cache hit
    browser.find_element(By.ID, "generate").click()
    wait.until(lambda d: "cache      HIT" in d.find_element(By.ID, "meta").text)


def test_errors_are_shown_to_the_person(browser, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = server
    browser.get(base + "/playground")
    browser.find_element(By.ID, "key").send_keys("fgk_wrong")
    browser.find_element(By.ID, "prompt").send_keys("x")
    browser.find_element(By.ID, "generate").click()
    WebDriverWait(browser, 15).until(
        lambda d: "invalid_api_key" in d.find_element(By.ID, "error").text
    )
    assert browser.find_element(By.ID, "generate").is_enabled()
