"""Variants on signed URLs: a fixed set of widths and formats, made once, served like images.

Every variant is decoded with a real decoder (Pillow) and its XMP read with exiftool, on
both runtimes: Pillow makes them locally, the Images binding (its double, sharp) on the
Worker.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from PIL import Image

from fluxgate.delivery.files import object_path

from ..support.bodies import generate, generation
from ..support.exiftool import exiftool_path
from ..support.image_files import image_bytes
from ..support.polling import finished

pytestmark = pytest.mark.runtimes("local", "worker")

PIL_FORMATS = {"webp": "WEBP", "avif": "AVIF", "jpeg": "JPEG", "png": "PNG"}
CONTENT_TYPES = {fmt: f"image/{fmt}" for fmt in PIL_FORMATS}
TRAINED = "trainedAlgorithmicMedia"


def variant_urls(client: Any, auth: dict[str, str], *names: str, **fields: Any) -> dict[str, Any]:
    """A fresh 1024x768 generation asking for ``names``: its body."""
    body = generation("a lighthouse at dusk", variants=list(names), **fields)
    r = generate(client, auth, body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def decoded(content: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(content))
    image.load()
    return image


def xmp_fields(content: bytes) -> dict[str, Any]:
    out = subprocess.run(
        [exiftool_path(), "-j", "-XMP:all", "-"], input=content, capture_output=True, check=True
    )
    return dict(json.loads(out.stdout)[0])


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(
    ("name", "width", "height"),
    [
        ("256.webp", 256, 192),
        ("128.avif", 128, 96),
        ("512.jpeg", 512, 384),
        ("1024.png", 1024, 768),
        ("256.avif", 256, 192),
    ],
)
def test_a_variant_decodes_to_its_width_and_format(client, auth, name, width, height):
    body = variant_urls(client, auth, name)
    item = body["data"][0]
    assert set(item["variants"]) == {name}
    r = client.get(path_of(item["variants"][name]))
    assert r.status_code == 200, r.text
    fmt = name.split(".")[1]
    assert r.headers["content-type"] == CONTENT_TYPES[fmt]
    assert r.headers["content-length"] == str(len(r.content))
    image = decoded(r.content)
    assert image.format == PIL_FORMATS[fmt]
    assert image.size == (width, height)  # the aspect ratio of 1024x768 kept
    sha = body["sha256"]
    assert r.headers["etag"] == f'"{sha}-{name}"'
    assert r.headers["cache-control"].startswith("private, max-age=")


@pytest.mark.parametrize("name", ["256.webp", "256.avif", "256.jpeg", "256.png"])
def test_every_variant_format_carries_the_ai_disclosure(client, auth, name):
    body = variant_urls(client, auth, name)
    r = client.get(path_of(body["data"][0]["variants"][name]))
    assert r.status_code == 200
    fields = xmp_fields(r.content)
    assert TRAINED in str(fields.get("DigitalSourceType", "")), fields


@pytest.mark.settings(ai_disclosure=False)
def test_no_disclosure_when_it_is_off(client, auth):
    body = variant_urls(client, auth, "256.png")
    r = client.get(path_of(body["data"][0]["variants"]["256.png"]))
    assert r.status_code == 200
    assert TRAINED not in json.dumps(xmp_fields(r.content))


def test_the_answer_signs_each_variant_once_expiring_with_the_image(client, auth):
    body = variant_urls(client, auth, "256.webp", "512.avif", "256.webp")
    item = body["data"][0]
    assert list(item["variants"]) == ["256.webp", "512.avif"]  # repeats dropped, order kept
    sha, ext = body["sha256"], body["content_type"].split("/")[1]
    for name, url in item["variants"].items():
        parts = urlsplit(url)
        assert parts.path == object_path(f"images/{sha}.{ext}/{name}")
        assert dict(parse_qsl(parts.query))["exp"] == str(item["expires_at"])


@pytest.mark.runtimes("local")
def test_a_variant_is_made_once(client, auth, images, storage):
    body = variant_urls(client, auth, "256.webp")
    url = path_of(body["data"][0]["variants"]["256.webp"])
    assert images.made == 0  # nothing is made until it is downloaded
    first = client.get(url)
    assert first.status_code == 200 and images.made == 1
    assert storage.object_exists(f"variants/{body['sha256']}/256.webp")
    again = client.get(url)
    assert again.status_code == 200 and again.content == first.content
    head = client.head(url)
    ranged = client.get(url, headers={"Range": "bytes=0-9"})
    assert head.status_code == 200 and ranged.status_code == 206
    # A later answer (a cache hit) signs a new URL for the same variant: still made once.
    hit = variant_urls(client, auth, "256.webp")
    assert hit["cached"] is True
    assert client.get(path_of(hit["data"][0]["variants"]["256.webp"])).content == first.content
    assert images.made == 1


@pytest.mark.runtimes("local")
def test_conditional_range_and_head_work_on_variants(client, auth, images):
    body = variant_urls(client, auth, "512.webp")
    url = path_of(body["data"][0]["variants"]["512.webp"])
    etag = f'"{body["sha256"]}-512.webp"'
    # The ETag is known from the path: a 304 reads only the original's head, makes nothing.
    r = client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    assert images.made == 0
    head = client.head(url)  # the first request may be a HEAD: it makes the variant
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "image/webp"
    size = int(head.headers["content-length"])
    full = client.get(url).content
    assert len(full) == size
    r = client.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == full[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{size}"
    assert r.headers["etag"] == etag
    r = client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416
    assert images.made == 1


@pytest.mark.runtimes("local")
def test_a_range_request_may_be_the_first(client, auth, images):
    body = variant_urls(client, auth, "128.png")
    url = path_of(body["data"][0]["variants"]["128.png"])
    r = client.get(url, headers={"Range": "bytes=0-7"})
    assert r.status_code == 206 and r.content == b"\x89PNG\r\n\x1a\n"
    assert images.made == 1


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{urlencode({**dict(parse_qsl(parts.query)), **changes})}"


@pytest.mark.runtimes("local")
@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: url.replace("/256.webp?", "/512.webp?"),  # another variant, same signature
        lambda url: url.replace("/256.webp?", "?"),  # the original, with the variant's signature
        lambda url: with_query(url, sig="A" * 43),
        lambda url: urlsplit(url).path,
    ],
)
def test_tampered_variant_urls_get_403(client, auth, images, tamper):
    body = variant_urls(client, auth, "256.webp")
    r = client.get(path_of(tamper(body["data"][0]["variants"]["256.webp"])))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "invalid_signature"
    assert images.made == 0


@pytest.mark.runtimes("local")
@pytest.mark.parametrize("name", ["300.webp", "256.gif", "0256.webp", "256.WEBP", "256"])
def test_a_signed_path_naming_no_variant_is_404(client, auth, signer, clock, images, name):
    """The gateway never signs such a path; one signed all the same names nothing."""
    body = variant_urls(client, auth)
    ext = body["content_type"].split("/")[1]
    path = object_path(f"images/{body['sha256']}.{ext}/{name}")
    r = client.get(f"{path}?{signer.sign(path, int(clock()) + 60)}")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert images.made == 0


@pytest.mark.runtimes("local")
def test_a_variant_of_a_missing_original_is_404_and_not_made(client, auth, images, storage):
    body = variant_urls(client, auth, "256.webp")
    ext = body["content_type"].split("/")[1]
    storage.delete_object(f"images/{body['sha256']}.{ext}")
    url = path_of(body["data"][0]["variants"]["256.webp"])
    for method in ("GET", "HEAD"):
        assert client.request(method, url).status_code == 404
    r = client.get(url, headers={"Range": "bytes=0-9"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert images.made == 0
    assert not storage.object_exists(f"variants/{body['sha256']}/256.webp")


def test_a_small_original_is_never_scaled_up(client, auth):
    """Variants scale down only: a 256-px original asked for 1024 stays 256 wide (the
    variant is still re-encoded in the format asked for)."""
    body = variant_urls(client, auth, "1024.webp", width=256, height=256)
    r = client.get(path_of(body["data"][0]["variants"]["1024.webp"]))
    image = decoded(r.content)
    assert (image.format, image.size) == ("WEBP", (256, 256))


def test_an_avif_variant_keeps_within_the_avif_side_limit(client, auth):
    """Cloudflare Images encodes AVIF up to 1200 px a side: a 1024-wide AVIF of a tall
    original is narrowed until its height fits (both runtimes make the same size)."""
    body = variant_urls(client, auth, "1024.avif", "1024.webp", width=1024, height=1920)
    urls = body["data"][0]["variants"]
    avif = decoded(client.get(path_of(urls["1024.avif"])).content)
    assert (avif.format, avif.size) == ("AVIF", (640, 1200))
    webp = decoded(client.get(path_of(urls["1024.webp"])).content)
    assert (webp.format, webp.size) == ("WEBP", (1024, 1920))


@pytest.mark.runtimes("local")
def test_get_image_signs_variants_on_request(client, auth, images):
    body = variant_urls(client, auth)
    assert "variants" not in body["data"][0]
    r = client.get(f"/v1/images/{body['id']}?variants=256.webp,128.jpeg", headers=auth)
    assert r.status_code == 200, r.text
    item = r.json()["data"][0]
    assert list(item["variants"]) == ["256.webp", "128.jpeg"]
    image = decoded(client.get(path_of(item["variants"]["128.jpeg"])).content)
    assert (image.format, image.width) == ("JPEG", 128)
    r = client.get(f"/v1/images/{body['id']}?variants=256.bmp", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_variant"


def test_b64_json_answers_carry_variant_urls(client, auth):
    body = variant_urls(client, auth, "128.webp", response_format="b64_json")
    item = body["data"][0]
    assert "b64_json" in item and "url" not in item
    image = decoded(client.get(path_of(item["variants"]["128.webp"])).content)
    assert (image.format, image.width) == ("WEBP", 128)


def test_multipart_and_edits_take_variants(client, auth):
    reference_png = image_bytes("PNG", 300, 200)
    r = client.post(
        "/v1/images/generations",
        headers=auth,
        data={"prompt": "a kite", "variants": "256.webp,128.png"},
        files={"input_image_0": ("ref.png", reference_png, "image/png")},
    )
    assert r.status_code == 200, r.text
    assert list(r.json()["data"][0]["variants"]) == ["256.webp", "128.png"]
    r = client.post(
        "/v1/images/edits",
        headers=auth,
        data={"prompt": "the same, at night", "variants": '["512.avif"]'},
        files={"image": ("ref.png", reference_png, "image/png")},
    )
    assert r.status_code == 200, r.text
    url = r.json()["data"][0]["variants"]["512.avif"]
    image = decoded(client.get(path_of(url)).content)
    assert (image.format, image.width) == ("AVIF", 512)


def test_an_async_job_keeps_its_variants(client, auth):
    body = generation("a harbour", variants=["256.webp"])
    r = generate(client, auth, body, headers={"Prefer": "respond-async"})
    assert r.status_code == 202, r.text
    job = finished(client, auth, r.json()["id"])
    assert job["status"] == "succeeded", job
    url = job["result"]["data"][0]["variants"]["256.webp"]
    image = decoded(client.get(path_of(url)).content)
    assert (image.format, image.width) == ("WEBP", 256)


@pytest.mark.parametrize(
    ("variants", "code"),
    [
        (["300.webp"], "invalid_variant"),
        (["256.gif"], "invalid_variant"),
        (["256.webp", "webp"], "invalid_variant"),
        ("256.bmp", "invalid_variant"),
        ([f"{w}.webp" for w in (128, 256, 512, 1024)] * 5, "invalid_request"),
        ([256], "invalid_request"),
    ],
)
def test_requested_variants_are_validated(client, auth, ai, variants, code):
    r = generate(client, auth, generation("a fox", variants=variants))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["param"].startswith("variants")
    assert ai.calls == 0  # refused before anything is generated


def test_idempotency_key_covers_the_variants(client, auth):
    headers = {"Idempotency-Key": "variants-1"}
    first = generate(client, auth, generation("an owl", variants=["256.webp"]), headers=headers)
    assert first.status_code == 200, first.text
    again = generate(client, auth, generation("an owl", variants=["256.webp"]), headers=headers)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    other = generate(client, auth, generation("an owl", variants=["512.webp"]), headers=headers)
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"


@pytest.mark.unbound("images")
def test_without_a_transformer_variants_are_501(client, auth, signer, clock, ai):
    r = generate(client, auth, generation("a heron", variants=["256.webp"]))
    assert r.status_code == 501 and r.json()["error"]["code"] == "variants_unavailable"
    assert ai.calls == 0  # never a generation with links that would fail
    body = variant_urls(client, auth)  # without variants, generations work as ever
    r = client.get(f"/v1/images/{body['id']}?variants=256.webp", headers=auth)
    assert r.status_code == 501 and r.json()["error"]["code"] == "variants_unavailable"
    ext = body["content_type"].split("/")[1]
    path = object_path(f"images/{body['sha256']}.{ext}/256.webp")
    r = client.get(f"{path}?{signer.sign(path, int(clock()) + 60)}")
    assert r.status_code == 501 and r.json()["error"]["code"] == "variants_unavailable"


@pytest.mark.runtimes("local")
def test_a_variant_that_cannot_be_made_is_502_and_not_retried_at_once(
    client, auth, images, storage
):
    """A failed transform stores nothing and is remembered for a while: the next requests
    get the 502 at once, without another (billed) transformation."""
    asked = generation(f"a failing variant {uuid.uuid4()}", variants=["512.jpeg"])
    body = generate(client, auth, asked).json()
    url = path_of(body["data"][0]["variants"]["512.jpeg"])
    images.fail(1)
    made = images.made
    first = client.get(url)
    assert first.status_code == 502 and first.json()["error"]["code"] == "variant_failed"
    assert client.get(url).status_code == 502 and client.head(url).status_code == 502
    assert images.made == made + 1  # one attempt, then the remembered failure
    assert not storage.object_exists(f"variants/{body['sha256']}/512.jpeg")


def test_a_variant_url_is_answered_as_an_image_url_is(client, auth):
    """What a client sees of a variant's URL, on both runtimes: a 304 before it is made,
    a HEAD that makes it, the bytes, a range of them, 416 past them, 403 for a bad
    signature, 405 for another method."""
    body = variant_urls(client, auth, "512.webp")
    url = path_of(body["data"][0]["variants"]["512.webp"])
    etag = f'"{body["sha256"]}-512.webp"'
    r = client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b"" and r.headers["etag"] == etag
    head = client.head(url)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"] == "image/webp" and head.headers["etag"] == etag
    size = int(head.headers["content-length"])
    full = client.get(url).content
    assert len(full) == size and full[8:12] == b"WEBP"
    r = client.get(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == full[10:20]
    assert r.headers["content-range"] == f"bytes 10-19/{size}"
    r = client.get(url, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    r = client.get(with_query(url, sig="A" * 43))
    assert r.status_code == 403 and r.json()["error"]["code"] == "invalid_signature"
    r = client.post(url)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.json()["error"]["message"] == "Files support GET and HEAD only."
