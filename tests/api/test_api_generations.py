"""POST /v1/images/generations, as a client sees it."""

import base64
import hashlib
import json

import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.imaging.formats import inspect_image

from ..support.admin import put_policy
from ..support.bodies import generate, generation
from ..support.clients import origin
from ..support.clock import just_now
from ..support.image_files import image_bytes
from ..support.runtimes import FAILS_STORE

pytestmark = pytest.mark.runtimes("local", "worker")

PROMPT = generation("a lighthouse at dawn")


# -- success ------------------------------------------------------------------------------


def test_generates_an_image_and_returns_a_signed_url(client, auth, ai):
    r = generate(client, auth, {**PROMPT, "width": 640, "height": 512, "steps": 4, "seed": 42})
    assert r.status_code == 200
    assert r.headers["x-cache"] == "MISS"
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["id"].startswith("img_") and body["object"] == "image.generation"
    assert body["model"] == FLUX_MODEL_ID
    assert (body["width"], body["height"], body["steps"], body["seed"]) == (640, 512, 4, 42)
    assert body["content_type"] == "image/png" and body["cached"] is False
    item = body["data"][0]
    assert set(item) == {"url", "expires_at"}
    assert item["url"].startswith(f"{origin(client)}/v1/files/images/")
    assert body["cost"] == {
        "steps": 4,
        "output_tiles": 2,
        "input_tiles": 0,
        "estimated_usd": pytest.approx(4 * 2 * 0.00041),
        "charged_usd": pytest.approx(4 * 2 * 0.00041),
    }

    image = client.get(item["url"])
    assert image.status_code == 200
    assert hashlib.sha256(image.content).hexdigest() == body["sha256"]
    assert len(image.content) == body["bytes"]
    assert inspect_image(image.content).width == 640
    assert ai.calls == 1


def test_defaults_follow_the_model(client, auth):
    body = generate(client, auth, PROMPT).json()
    assert (body["width"], body["height"], body["steps"]) == (1024, 768, 25)
    assert isinstance(body["seed"], int) and body["guidance"] is None


def test_b64_json_returns_the_image_inline(client, auth):
    r = generate(
        client, auth, {**PROMPT, "response_format": "b64_json", "width": 256, "height": 256}
    )
    item = r.json()["data"][0]
    assert set(item) == {"b64_json"}
    data = base64.b64decode(item["b64_json"])
    assert hashlib.sha256(data).hexdigest() == r.json()["sha256"]


@pytest.mark.settings(public_base_url="https://img.example.com")
def test_public_base_url_makes_urls_absolute_to_it(client, auth):
    url = generate(client, auth, PROMPT).json()["data"][0]["url"]
    assert url.startswith("https://img.example.com/v1/files/images/")


def test_url_ttl_is_honoured_and_capped(client, auth, clock):
    short = generate(client, auth, {**PROMPT, "url_ttl_seconds": 120}).json()
    assert short["data"][0]["expires_at"] in just_now(clock, 120)
    long = generate(client, auth, {**PROMPT, "url_ttl_seconds": 10**7}).json()
    assert long["data"][0]["expires_at"] in just_now(clock, 86400)


def test_multipart_with_reference_images_reaches_the_model(client, auth, ai):
    refs = {
        "input_image_0": ("a.png", image_bytes("PNG", 300, 200), "image/png"),
        "input_image_1": ("b.jpg", image_bytes("JPEG", 511, 511), "application/octet-stream"),
        "input_image_2": ("c.webp", image_bytes("WEBP", 64, 64), "image/webp"),
    }
    r = client.post(
        "/v1/images/generations",
        headers=auth,
        data={"prompt": "mix these", "width": "512", "height": "512", "steps": "2"},
        files=refs,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["reference_images"]) == 3
    assert body["cost"]["input_tiles"] == 3
    sent = ai.inputs[-1]["multipart"]
    assert "boundary=" in sent["contentType"]
    assert b'name="input_image_2"' in sent["body"] and b"image/webp" in sent["body"]


def test_json_reference_images_as_base64_and_data_urls(client, auth):
    png = image_bytes("PNG", 100, 100)
    r = generate(
        client,
        auth,
        {
            **PROMPT,
            "input_image_0": base64.b64encode(png).decode(),
            "input_image_1": "data:image/jpeg;base64,"
            + base64.b64encode(image_bytes("JPEG", 50, 50)).decode(),
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["reference_images"][0] == hashlib.sha256(png).hexdigest()


# -- bad input ----------------------------------------------------------------------------


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}
    assert "Traceback" not in json.dumps(body)
    return body["error"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({}, "invalid_request", "prompt"),
        ({"prompt": ""}, "invalid_request", "prompt"),
        ({"prompt": 5}, "invalid_request", "prompt"),
        ({"prompt": "x", "width": "1024"}, "invalid_request", "width"),
        ({"prompt": "x", "width": 255}, "invalid_request", "width"),
        ({"prompt": "x", "height": 1921}, "invalid_request", "height"),
        ({"prompt": "x", "steps": 0}, "invalid_request", "steps"),
        ({"prompt": "x", "steps": 51}, "invalid_request", "steps"),
        ({"prompt": "x", "seed": -1}, "invalid_request", "seed"),
        ({"prompt": "x", "width": 512.5}, "invalid_request", "width"),
        ({"prompt": "x", "width": True}, "invalid_request", "width"),
        ({"prompt": "x", "response_format": "png"}, "invalid_request", "response_format"),
        ({"prompt": "x", "style": "anime"}, "unknown_parameter", "style"),
        ({"prompt": "x", "input_image_4": "AAAA"}, "too_many_reference_images", None),
        ({"prompt": "x", "input_image_0": "%%%"}, "invalid_image", "input_image_0"),
        ({"prompt": " \t "}, "prompt_rejected", "prompt"),
    ],
)
def test_invalid_json_fields_are_400_with_a_stable_code(client, auth, ai, body, code, param):
    r = generate(client, auth, body)
    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == code and error["param"] == param
    assert ai.calls == 0


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b"\xff\xfe", b'"text"'])
def test_malformed_json_is_invalid_json(client, auth, raw):
    r = client.post(
        "/v1/images/generations", content=raw, headers={**auth, "content-type": "application/json"}
    )
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


def test_unsupported_content_type_is_415(client, auth):
    r = client.post(
        "/v1/images/generations",
        content=b"prompt=x",
        headers={**auth, "content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415 and error_of(r)["code"] == "unsupported_media_type"


def test_five_reference_images_are_refused(client, auth, ai):
    files = {
        f"input_image_{i}": (f"{i}.png", image_bytes("PNG", 16, 16), "image/png") for i in range(5)
    }
    r = client.post("/v1/images/generations", headers=auth, data={"prompt": "x"}, files=files)
    assert r.status_code == 400 and error_of(r)["code"] == "too_many_reference_images"
    assert ai.calls == 0


def test_a_gif_reference_is_refused_by_its_bytes_not_its_name(client, auth):
    files = {"input_image_0": ("looks.png", image_bytes("GIF", 16, 16), "image/png")}
    r = client.post("/v1/images/generations", headers=auth, data={"prompt": "x"}, files=files)
    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == "unsupported_image_type" and error["param"] == "input_image_0"


@pytest.mark.parametrize("size", [(600, 600), (512, 100), (100, 512)])
def test_references_of_512_or_more_are_refused_with_their_size(client, auth, size):
    files = {"input_image_0": ("big.png", image_bytes("PNG", *size), "image/png")}
    r = client.post("/v1/images/generations", headers=auth, data={"prompt": "x"}, files=files)
    assert r.status_code == 400
    error = error_of(r)
    assert error["code"] == "reference_image_dimensions"
    assert f"{size[0]}x{size[1]}" in error["message"]


@pytest.mark.settings(max_reference_image_bytes=2048)
def test_a_reference_over_the_byte_cap_is_413(client, auth):
    noisy = image_bytes("PNG", 200, 200, color=(1, 2, 3)) + b"\0" * 4096
    files = {"input_image_0": ("n.png", noisy, "image/png")}
    r = client.post("/v1/images/generations", headers=auth, data={"prompt": "x"}, files=files)
    assert r.status_code == 413 and error_of(r)["code"] == "reference_image_too_large"


@pytest.mark.settings(max_body_bytes=64 * 1024)
def test_an_oversize_body_is_413_before_parsing(client, auth, ai):
    r = client.post("/v1/images/generations", headers=auth, json={"prompt": "x" * (70 * 1024)})
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"

    def chunked():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b"x" * 8192

    r = client.post(
        "/v1/images/generations",
        content=chunked(),
        headers={**auth, "content-type": "application/json"},
    )
    assert r.status_code == 413
    assert ai.calls == 0


@pytest.mark.settings(max_body_bytes=64 * 1024)
@pytest.mark.parametrize("path", ["/v1/images/generations", "/v1/admin/keys", "/v1/usage"])
def test_an_oversize_body_is_413_before_any_credential_is_looked_at(client, path, audit_lines):
    r = client.post(path, json={"prompt": "x" * (70 * 1024)})  # declared: refused unread
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"

    def chunked():  # no Content-Length: refused once past the limit
        for _ in range(20):
            yield b"x" * 8192

    r = client.post(path, content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and error_of(r)["code"] == "payload_too_large"
    refusals = [line for line in audit_lines() if line["action"] == "request.refused"]
    assert [(r["reason"], r["status"], r["path"]) for r in refusals] == [
        ("payload_too_large", 413, path)
    ] * 2


@pytest.mark.settings(max_body_bytes=64 * 1024)
def test_oversize_bodies_get_their_413_every_time(client):
    """Refused while the client was still sending, such a body now and then lost its
    connection on the Worker instead (a 500, or a cut answer): what arrives is taken in
    before the answer, declared and chunked alike."""

    def chunked():
        for _ in range(20):
            yield b"x" * 8192

    json_body = {"content-type": "application/json"}
    statuses = []
    for path in ("/v1/admin/keys", "/v1/usage", "/v1/images/generations") * 10:
        statuses.append(client.post(path, content=chunked(), headers=json_body).status_code)
        statuses.append(client.post(path, json={"prompt": "x" * (70 * 1024)}).status_code)
    assert set(statuses) == {413}


def test_multipart_field_errors(client, auth):
    fields = {"prompt": (None, "x"), "width": (None, "wide")}  # multipart without files
    r = client.post("/v1/images/generations", headers=auth, files=fields)
    assert r.status_code == 400 and error_of(r)["param"] == "width"
    r = client.post(
        "/v1/images/generations",
        headers=auth,
        files={
            "prompt": (None, "x"),
            "steps": (None, "2"),
            "width": (None, "256"),
            "height": (None, "256"),
        },
    )
    assert r.status_code == 200 and r.json()["steps"] == 2
    r = client.post(
        "/v1/images/generations",
        headers=auth,
        data={"prompt": "x"},
        files={"prompt": ("p.txt", b"file", "text/plain")},
    )
    assert r.status_code == 400
    r = client.post(
        "/v1/images/generations",
        content=b"--nope\r\n",
        headers={**auth, "content-type": "multipart/form-data; boundary=zzz"},
    )
    assert r.status_code == 400


def test_prompt_policy_violations_carry_a_reason(client, auth):
    put_policy(
        client, max_prompt_length=20, deny_terms=["forbidden"], deny_patterns=[r"\d{4}-\d{4}"]
    )
    cases = {
        "a forbidden cat": "denied_term",
        "card 1234-5678": "denied_pattern",
        "x" * 21: "too_long",
    }
    for prompt, reason in cases.items():
        r = generate(client, auth, {"prompt": prompt})
        assert r.status_code == 400
        error = error_of(r)
        assert (error["code"], error["reason"]) == ("prompt_rejected", reason)


# -- the model failing ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "status", "code", "retry_after"),
    [
        ("5006: Error: bad input", 400, "upstream_invalid_input", None),
        ("3003: Bad request", 400, "upstream_invalid_input", None),
        ("3006: Request too large", 413, "upstream_payload_too_large", None),
        ("3007: Timeout", 504, "upstream_timeout", None),
        ("3036: Rate limited", 429, "upstream_rate_limited", "10"),
        ("3040: Capacity temporarily exceeded", 503, "upstream_capacity", "30"),
        ("3043: Internal error", 502, "upstream_error", None),
    ],
)
def test_model_errors_map_to_statuses_and_store_nothing(
    client, auth, ai, message, status, code, retry_after
):
    ai.fail_next(message)
    r = generate(client, auth, PROMPT)
    assert r.status_code == status
    assert error_of(r)["code"] == code
    assert r.headers.get("retry-after") == retry_after
    again = generate(client, auth, PROMPT)
    assert again.headers["x-cache"] == "MISS"  # the failure was not cached


# -- storage failing ------------------------------------------------------------------------


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_an_object_write_failure_is_503_and_leaves_no_cache_entry(client, auth, storage, ai):
    storage.fail(object_writes=True)
    r = generate(client, auth, PROMPT)
    assert r.status_code == 503 and error_of(r)["code"] == "storage_unavailable"
    storage.fail()
    r = generate(client, auth, PROMPT)
    assert r.headers["x-cache"] == "MISS" and ai.calls == 2


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_a_kv_write_failure_still_returns_the_image(client, auth, storage):
    storage.fail(kv_writes=("cache:", "gen:"))
    r = generate(client, auth, PROMPT)
    assert r.status_code == 200
    assert client.get(r.json()["data"][0]["url"]).status_code == 200
    storage.fail()
    assert generate(client, auth, PROMPT).headers["x-cache"] == "MISS"


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_a_kv_read_failure_degrades_to_a_miss(client, auth, storage):
    generate(client, auth, PROMPT)
    storage.fail(kv_reads=("cache:",))
    r = generate(client, auth, PROMPT)
    assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
