"""``POST /v1/provenance/verify``: "did this deployment generate this image?"

An image generated here is recognised as it is, and after what people do to images: a
JPEG re-encoding at quality 70, a resize to half, every piece of metadata stripped, a 5 %
crop. Twenty images drawn elsewhere are not. The generation is named to its owner and the
admin only; anyone else learns that, and on which day, it was generated here.
"""

from __future__ import annotations

import io
import zlib
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from ..support.admin import new_key
from ..support.bodies import generate, generation
from ..support.scenes import TRANSFORMATIONS, unrelated_scenes

pytestmark = pytest.mark.runtimes("local", "worker")

VERIFY = "/v1/provenance/verify"


def generated(client: Any, auth: dict[str, str], prompt: str) -> tuple[dict[str, Any], bytes]:
    """A new generation's body and its file, downloaded with its signed URL."""
    r = generate(client, auth, generation(prompt, width=1024, height=768))
    assert r.status_code == 200, r.text
    body = r.json()
    url = urlsplit(body["data"][0]["url"])
    download = client.get(f"{url.path}?{url.query}")
    assert download.status_code == 200
    return body, download.content


def verified(client: Any, auth: dict[str, str], image: bytes, **headers: str) -> dict[str, Any]:
    r = client.post(
        VERIFY,
        headers={**auth, "Content-Type": "application/octet-stream", **headers},
        content=image,
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.json()["object"] == "provenance.verification"
    return dict(r.json())


def test_the_file_as_delivered_is_recognised_every_way_and_named_to_its_owner(client, auth):
    body, image = generated(client, auth, "a lighthouse at dusk")
    found = verified(client, auth, image)
    assert found["generated_here"] is True
    assert found["matched_by"] == ["content_hash", "content_credentials", "fingerprint"]
    assert found["generation"] == {
        "id": body["id"],
        "created": body["created"],
        "model": body["model"],
    }
    assert found["content_credentials"] == {
        "signed_here": True,
        "signature_valid": True,
        "binding_valid": True,
    }
    assert found["fingerprint"]["distance"] == 0


@pytest.mark.parametrize("change", list(TRANSFORMATIONS))
def test_an_image_is_recognised_after_what_people_do_to_images(client, auth, change):
    body, image = generated(client, auth, f"a red kite over a hill, then {change}")
    found = verified(client, auth, TRANSFORMATIONS[change](image))
    assert found["generated_here"] is True, found
    assert found["matched_by"] == ["fingerprint"]  # a new file, its credentials gone
    assert found["content_credentials"] is None
    assert found["generation"]["id"] == body["id"]
    assert found["fingerprint"]["distance"] <= found["fingerprint"]["threshold"]


def test_twenty_images_drawn_elsewhere_are_not_recognised(client, auth):
    for prompt in ("a harbour at noon", "three pears on a table", "a snowy forest path"):
        generated(client, auth, prompt)  # the index is not empty
    for number, scene in enumerate(unrelated_scenes()):
        found = verified(client, auth, scene)
        assert found["generated_here"] is False, (number, found)
        assert found["matched_by"] == []
        assert found["generation"] is None and found["generated_on"] is None


def test_another_key_learns_only_that_and_when_it_was_generated_here(client, auth):
    _, image = generated(client, auth, "an owl in a library")
    stranger = new_key(client, "stranger")
    found = verified(client, stranger, image)
    assert found["generated_here"] is True
    assert found["generation"] is None
    owner = verified(client, auth, image)
    assert found["generated_on"] == owner["generated_on"] is not None


def test_the_admin_sees_every_keys_generation(client, auth, admin):
    body, image = generated(client, auth, "a paper boat on a pond")
    found = verified(client, admin, image)
    assert found["generation"]["id"] == body["id"]


def test_an_image_can_be_sent_as_a_form_part(client, auth):
    body, image = generated(client, auth, "a tram in the rain")
    r = client.post(VERIFY, headers=auth, files={"image": ("tram.png", image, "image/png")})
    assert r.status_code == 200, r.text
    assert r.json()["generation"]["id"] == body["id"]


def test_what_is_not_an_image_is_refused_with_a_stable_code(client, auth):
    r = client.post(VERIFY, headers={**auth, "Content-Type": "image/png"}, content=b"not an image")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_image"
    r = client.post(VERIFY, headers={**auth, "Content-Type": "text/plain"}, content=b"hello")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "unsupported_media_type"
    damaged = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    r = client.post(VERIFY, headers={**auth, "Content-Type": "image/png"}, content=damaged)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_image"


def test_a_caller_without_a_credential_is_refused_before_the_body_is_read(client):
    r = client.post(VERIFY, headers={"Content-Type": "image/png"}, content=b"\x89PNG")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "missing_api_key"


def test_a_form_holds_one_file_named_image_and_nothing_else(client, auth):
    _, image = generated(client, auth, "a kettle")
    for files in (
        {"photo": ("a.png", image, "image/png")},
        [("image", ("a.png", image, "image/png")), ("image", ("b.png", image, "image/png"))],
        [("image", ("a.png", image, "image/png"))] * 6,
    ):
        r = client.post(VERIFY, headers=auth, files=files)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "invalid_image"


@pytest.mark.rate_limits({"standard": {"limit": 2, "period": 60}})
def test_each_verification_counts_against_the_keys_rate_limit(
    client, auth, admin, rate_limit_rules
):
    """Each costs a rendering (a billed Images transformation on Workers): a key verifies
    no faster than it may generate. The admin token is not rate limited."""
    rate_limit_rules()
    _, image = generated(client, auth, "a sailing ship")  # 1 of 2
    r = client.post(VERIFY, headers={**auth, "Content-Type": "image/png"}, content=image)
    assert r.status_code == 200 and r.headers["ratelimit-limit"] == "2"  # 2 of 2
    r = client.post(VERIFY, headers={**auth, "Content-Type": "image/png"}, content=image)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert verified(client, admin, image)["generated_here"] is True


def test_our_manifest_on_altered_bytes_is_shown_but_proves_nothing(client, auth):
    """A text chunk added after the pixels: the manifest is still ours and its signature
    valid, but it was not signed for these bytes. The fingerprint (the same pixels) still
    finds the generation."""
    body, image = generated(client, auth, "a glass of water")
    end = image.rindex(b"IEND") - 4
    text = b"tEXtComment\x00edited"
    chunk = len(text[4:]).to_bytes(4, "big") + text + zlib.crc32(text).to_bytes(4, "big")
    found = verified(client, auth, image[:end] + chunk + image[end:])
    assert found["content_credentials"] == {
        "signed_here": True,
        "signature_valid": True,
        "binding_valid": False,
    }
    assert found["matched_by"] == ["fingerprint"]
    assert found["generation"]["id"] == body["id"]


def test_shapes_no_rendering_fits_are_answered_without_a_fingerprint(client, auth):
    """A 1-px-wide strip 300 px tall has no fingerprint to compare (no generation is that
    shape), and its hash and credentials are still checked: 200, not recognised."""
    strip = Image.effect_noise((1, 300), 80).convert("RGB")
    out = io.BytesIO()
    strip.save(out, "PNG")
    found = verified(client, auth, out.getvalue())
    assert found["generated_here"] is False and found["fingerprint"] is None
