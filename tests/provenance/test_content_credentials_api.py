"""C2PA Content Credentials on every file the API delivers, read by the ecosystem's own
validator (c2pa-python, the Content Authenticity Initiative's c2pa-rs).

A generated PNG and its ``256.webp``, ``512.avif`` and ``1024.jpeg`` variants each carry a
manifest signed with the deployment's identity (the tests' chain, whose root the validator
is given as its trust anchor): the original's says a trained algorithm created it, each
variant's that it was resized and/or transcoded from the original, whose manifest it
carries as its ``parentOf`` ingredient. Both runtimes: the local one signs with
``cryptography``, the Worker on workerd with WebCrypto.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from fluxgate.delivery.disclosure import TRAINED_ALGORITHMIC_MEDIA
from fluxgate.local.runtime import local_ports
from fluxgate.service.settings import ConfigError

from ..support.bodies import generate, generation
from ..support.c2pa_validator import Validation, validate
from ..support.config import C2PA_CHAIN, C2PA_ROOT
from ..support.exiftool import exiftool_path
from ..support.servers import serve
from ..support.tsa import TimestampAuthority

pytestmark = pytest.mark.runtimes("local", "worker")

VARIANTS = {"256.webp": ("webp", 256), "512.avif": ("avif", 512), "1024.jpeg": ("jpeg", 1024)}


def download(client: Any, url: str) -> bytes:
    parts = urlsplit(url)
    r = client.get(f"{parts.path}?{parts.query}")
    assert r.status_code == 200, r.text
    return bytes(r.content)


def generated(client: Any, auth: dict[str, str], prompt: str, **fields: Any) -> dict[str, Any]:
    r = generate(client, auth, generation(prompt, width=1024, height=768, **fields))
    assert r.status_code == 200, r.text
    return dict(r.json())


def trusted(data: bytes, fmt: str) -> Validation:
    """The validator's reading, required to be trusted and free of any failure."""
    found = validate(data, fmt, C2PA_ROOT)
    assert found is not None, "no manifest store"
    assert found.state == "Trusted", (found.state, found.failures)
    assert not found.error_codes, found.error_codes
    assert "claimSignature.validated" in found.success
    assert "assertion.dataHash.match" in found.success or "assertion.bmffHash.match" in (
        found.success
    )
    return found


def test_a_generated_png_and_its_variants_carry_valid_trusted_credentials(client, auth):
    body = generated(client, auth, "a lighthouse at dusk", variants=list(VARIANTS))
    item = body["data"][0]
    original = trusted(download(client, item["url"]), "png")
    assert original.actions == ("c2pa.created",)
    assert original.digital_source_types == (TRAINED_ALGORITHMIC_MEDIA,)
    assert original.software_agents == ("Fluxgate",)
    assert original.instance_id == f"xmp.iid:{body['id']}"
    assert original.ingredients == ()

    for name, (fmt, _) in VARIANTS.items():
        variant = trusted(download(client, item["variants"][name]), fmt)
        assert variant.actions[0] == "c2pa.opened"
        assert set(variant.actions[1:]) <= {"c2pa.resized", "c2pa.transcoded"}
        assert "c2pa.transcoded" in variant.actions  # PNG to another format
        assert TRAINED_ALGORITHMIC_MEDIA in variant.digital_source_types
        (parent,) = variant.ingredients
        assert parent.relationship == "parentOf"
        assert parent.manifest == original.active_manifest  # leads back to the original
        assert original.active_manifest in variant.manifests
        assert "ingredient.manifest.validated" in variant.ingredient_success | variant.success


def test_a_variant_narrower_than_its_original_says_it_was_resized(client, auth):
    body = generated(client, auth, "a map of an island", variants=["256.webp"])
    found = trusted(download(client, body["data"][0]["variants"]["256.webp"]), "webp")
    assert found.actions == ("c2pa.opened", "c2pa.resized", "c2pa.transcoded")


def test_without_the_trust_anchor_the_credentials_are_valid_but_untrusted(client, auth):
    body = generated(client, auth, "a stone bridge")
    found = validate(download(client, body["data"][0]["url"]), "png", None)
    assert found is not None
    assert found.state == "Valid"
    assert found.failures == {"signingCredential.untrusted"}


def test_the_ai_disclosure_xmp_is_still_read_by_exiftool(client, auth):
    body = generated(client, auth, "a fox in the snow", variants=["256.webp"])
    for url in (body["data"][0]["url"], body["data"][0]["variants"]["256.webp"]):
        out = subprocess.run(
            [exiftool_path(), "-j", "-XMP:all", "-"],
            input=download(client, url),
            capture_output=True,
            check=True,
        )
        fields = json.loads(out.stdout)[0]
        assert fields["DigitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
        assert fields["AISystemVersionUsed"] == body["model"]


def test_readiness_says_how_images_are_signed(client):
    r = client.get("/readyz")
    assert r.json()["content_credentials"] == "signed"
    assert "warnings" not in r.json()


@pytest.mark.secrets(C2PA_SIGNING_KEY=None, C2PA_CERTIFICATE_CHAIN=None)
def test_without_a_signing_identity_images_are_unsigned_and_readiness_warns(
    client, auth, runtime, request
):
    body = generated(client, auth, "a quiet street")
    assert validate(download(client, body["data"][0]["url"]), "png", C2PA_ROOT) is None
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json()["content_credentials"] == "unsigned"
    (warning,) = r.json()["warnings"]
    assert warning.startswith("c2pa_unsigned: ")
    if runtime == "worker":  # and when the isolate built its gateway, on the console
        lines = [line["message"] for line in request.getfixturevalue("workerd").console()]
        assert any("c2pa_unsigned: " in line for line in lines), lines


@pytest.mark.settings(c2pa=False)
def test_c2pa_off_stores_no_manifest(client, auth):
    body = generated(client, auth, "a lantern")
    assert validate(download(client, body["data"][0]["url"]), "png", C2PA_ROOT) is None
    assert client.get("/readyz").json()["content_credentials"] == "off"


@pytest.mark.runtimes("worker")  # the local server refuses to start: test_local_identity
@pytest.mark.secrets(C2PA_CERTIFICATE_CHAIN=None)
def test_a_key_without_its_chain_is_a_configuration_error_that_names_the_secret(client, admin):
    r = client.post("/v1/admin/keys", headers=admin, json={"name": "x"})
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "server_misconfigured"
    assert "C2PA_CERTIFICATE_CHAIN" in r.json()["error"]["message"]
    assert "PRIVATE KEY" not in r.text
    assert client.get("/readyz").status_code == 503


def test_the_local_server_refuses_to_start_with_half_an_identity(tmp_path):
    environ = {"FLUXGATE_C2PA_SIGNING_KEY": C2PA_CHAIN.key_pem}
    with pytest.raises(ConfigError, match="FLUXGATE_C2PA_SIGNING_KEY") as raised:
        local_ports(tmp_path, environ)
    assert "PRIVATE KEY" not in str(raised.value)


def test_the_local_server_signs_with_a_development_chain_by_default(tmp_path):
    ports = local_ports(tmp_path, {})
    assert ports.development_signer and ports.claim_signer is not None
    assert (tmp_path / "c2pa" / "dev-root.pem").is_file()
    assert local_ports(tmp_path, {"FLUXGATE_C2PA": "false"}).claim_signer is None


def test_with_a_timestamp_authority_each_signature_is_time_stamped(runtime, tmp_path):
    """``C2PA_TIMESTAMP_URL``: the server (``fluxgate serve``, or ``npm run worker``: the
    Worker's own ``fetch`` on workerd's network) has each signature countersigned by the
    authority, and the validator trusts the stamp given the authority's root."""
    with (
        TimestampAuthority() as tsa,
        serve(
            runtime,
            tmp_path,
            c2pa_timestamp_url=tsa.url,
            c2pa_signing_key=C2PA_CHAIN.key_pem,
            c2pa_certificate_chain=C2PA_CHAIN.chain_pem,
        ) as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        auth = {"Authorization": f"Bearer {server.new_key()}"}
        body = generated(client, auth, "a clock tower", variants=["256.webp"])
        item = body["data"][0]
        for url, fmt in ((item["url"], "png"), (item["variants"]["256.webp"], "webp")):
            found = validate(download(client, url), fmt, C2PA_ROOT, also_trusted=[tsa.root_pem])
            assert found is not None and found.state == "Trusted", found
            assert {"timeStamp.validated", "timeStamp.trusted"} <= found.success
        assert len(tsa.requests) == 2  # one per signature: the original's, the variant's
