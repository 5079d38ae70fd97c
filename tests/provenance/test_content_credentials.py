"""Content Credentials: every stored image carries a C2PA manifest that the ecosystem's own
validator (``c2pa-python``, i.e. ``c2pa-rs``) accepts as Trusted under our root.

An original (PNG, JPEG, WebP, AVIF, marked with the AI-disclosure XMP first, as production
does) states ``c2pa.created`` by a trained algorithm, through Fluxgate, naming the model; a
variant states ``c2pa.opened`` from its original (whose manifest it carries as its
``parentOf`` ingredient) and what was done to it. The binding holds for the file as signed
and breaks with one changed pixel byte; our own :func:`check` agrees with the validator.
Signing reads the image through small ranges only, never as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import io
import json
import logging
import re
import struct
import subprocess
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import c2pa
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from fluxgate.delivery.disclosure import mark
from fluxgate.imaging.chunks import png_chunk
from fluxgate.imaging.image_bytes import HEAD_BYTES, ImageBytes, InProcessImage, SplicePart
from fluxgate.local.timestamp_http import HttpxTimestamper
from fluxgate.provenance import cbor, cose, der, jumbf, verify
from fluxgate.provenance.content_credentials import (
    TIMESTAMP_RESERVE_BYTES,
    CredentialsCheck,
    CredentialsError,
    Statement,
    check,
    manifest_store,
    sign_original,
    sign_variant,
)
from fluxgate.provenance.timestamp import SIG_TST2, Timestamper, countersign_data

from ..support.c2pa_validator import MIME_TYPES, Validation, validate
from ..support.exiftool import exiftool_path
from ..support.tsa import TimestampAuthority, explicit, read_request, seq, tlv

T = TypeVar("T")

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
MODEL = "@cf/black-forest-labs/flux-2-dev"
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z
GENERATION = "gen_0123456789abcdef"
STATEMENT = Statement("Fluxgate", "0.1.0", MODEL, CREATED, GENERATION, "A red fox")
PILLOW = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
FORMATS = tuple(PILLOW)
HASH_MATCH = {
    "png": "assertion.dataHash.match",
    "jpeg": "assertion.dataHash.match",
    "webp": "assertion.dataHash.match",
    "avif": "assertion.bmffHash.match",
}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


# -- a test signing identity: a root CA, and an ES256 leaf with C2PA's profile ------------


class TestSigner:
    """A :class:`~fluxgate.provenance.signer.ClaimSigner` over a ``cryptography`` key."""

    __test__ = False

    def __init__(self, key: ec.EllipticCurvePrivateKey, leaf: x509.Certificate) -> None:
        self.key = key
        self.leaf = leaf

    @property
    def chain(self) -> tuple[bytes, ...]:
        return (self.leaf.public_bytes(serialization.Encoding.DER),)

    @property
    def leaf_pem(self) -> str:
        return self.leaf.public_bytes(serialization.Encoding.PEM).decode()

    async def sign(self, message: bytes) -> bytes:
        r, s = decode_dss_signature(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    async def verify(self, message: bytes, signature: bytes) -> bool:
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            self.key.public_key().verify(der, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Identity:
    root_pem: str
    signer: TestSigner
    other: TestSigner = field(repr=False)  # another leaf under the same root
    expired: TestSigner = field(repr=False)  # one valid from three hours to an hour ago


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fluxgate tests"),
        ]
    )


def _key_usage(*, signing: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signing,
        crl_sign=not signing,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    root_key: ec.EllipticCurvePrivateKey,
    name: str,
    valid: tuple[dt.timedelta, dt.timedelta] = (-dt.timedelta(hours=1), dt.timedelta(days=7)),
) -> TestSigner:
    """An end-entity ES256 certificate as C2PA wants it: digitalSignature (critical), an
    allowed extended key usage (emailProtection), not a CA, with its authority key id;
    valid from and until ``valid`` (relative to now)."""
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name("Fluxgate test root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + valid[0])
        .not_valid_after(now + valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signing=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    return TestSigner(key, leaf)


@pytest.fixture(scope="module")
def identity() -> Identity:
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Fluxgate test root"))
        .issuer_name(_name("Fluxgate test root"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(signing=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    return Identity(
        root_pem=root.public_bytes(serialization.Encoding.PEM).decode(),
        signer=_leaf(root_key, "Fluxgate test signer"),
        other=_leaf(root_key, "Someone else's signer"),
        expired=_leaf(
            root_key, "Fluxgate expired signer", (-dt.timedelta(hours=3), -dt.timedelta(hours=1))
        ),
    )


# -- images ---------------------------------------------------------------------------------


def picture(width: int, height: int, seed: int = 0) -> Image.Image:
    """Varied pixels (a flat image would survive a changed byte in some codecs)."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 5 + seed) % 256, (y * 3 + x) % 256, (x * y + seed * 7) % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    return image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, PILLOW[fmt])
    return buffer.getvalue()


def marked(data: bytes, fmt: str) -> ImageBytes:
    """As production stores it before signing: with the AI-disclosure XMP."""
    return run(mark(InProcessImage(data), fmt, MODEL, CREATED, GENERATION))


def original(
    fmt: str,
    identity: Identity,
    size: tuple[int, int] = (96, 64),
    *,
    timestamper: Timestamper | None = None,
    signer: TestSigner | None = None,
) -> bytes:
    image = marked(encoded(picture(*size), fmt), fmt)
    signed = run(
        sign_original(image, fmt, STATEMENT, signer or identity.signer, timestamper=timestamper)
    )
    return signed.python_bytes()


def checked(data: bytes, fmt: str, identity: Identity) -> CredentialsCheck:
    return run(check(InProcessImage(data), fmt, identity.signer))


def trusted(data: bytes, fmt: str, identity: Identity) -> Validation:
    validation = validate(data, fmt, identity.root_pem)
    assert validation is not None, "no manifest store found by c2pa-rs"
    return validation


def pixel_offset(data: bytes, fmt: str) -> int:
    """An offset inside the compressed picture data (not in any header)."""
    if fmt == "png":
        return data.index(b"IDAT") + 4 + 10
    if fmt == "jpeg":  # the (single) scan's data: after the last SOS marker and its header
        scan = data.rindex(b"\xff\xda")
        return scan + 2 + int.from_bytes(data[scan + 2 : scan + 4], "big") + 10
    if fmt == "webp":
        return data.index(b"VP8 ") + 8 + 20
    return data.index(b"mdat") + 4 + 10  # the image's mdat (the XMP's is last)


def flipped(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


# -- originals ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_original_is_trusted_and_says_a_trained_algorithm_made_it(fmt, identity):
    data = original(fmt, identity)
    validation = trusted(data, fmt, identity)
    assert validation.state == "Trusted", validation
    assert validation.error_codes == frozenset()
    assert {"claimSignature.validated", "signingCredential.trusted", HASH_MATCH[fmt]} <= (
        validation.success
    )
    assert validation.actions == ("c2pa.created",)
    assert validation.digital_source_types == (TRAINED,)
    assert validation.software_agents == ("Fluxgate",)
    assert validation.ingredients == ()
    assert validation.instance_id == f"xmp.iid:{GENERATION}"
    assert validation.title == "A red fox"
    assert checked(data, fmt, identity) == CredentialsCheck(
        present=True,
        signature_valid=True,
        signed_by_us=True,
        binding_valid=True,
        label=validation.active_manifest,
        instance=GENERATION,
        created=CREATED,
        software_agent="Fluxgate",
        software_version="0.1.0",
        model=MODEL,
        parent=None,
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_without_our_root_as_trust_anchor_it_is_valid_but_not_trusted(fmt, identity):
    validation = validate(original(fmt, identity), fmt, None)
    assert validation is not None
    assert validation.state == "Valid"
    assert validation.failures == {"signingCredential.untrusted"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_signed_file_is_still_the_picture_with_its_disclosure(fmt, identity, tmp_path):
    data = original(fmt, identity)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.size == (96, 64)
    path = tmp_path / f"signed.{fmt}"
    path.write_bytes(data)
    result = subprocess.run(
        [exiftool_path(), "-j", "-XMP-iptcExt:DigitalSourceType", "-Warning", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(result.stdout)[0]
    assert found.get("DigitalSourceType") == TRAINED
    assert "Warning" not in found


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_changed_pixel_byte_breaks_the_binding(fmt, identity):
    data = original(fmt, identity)
    tampered = flipped(data, pixel_offset(data, fmt))
    validation = trusted(tampered, fmt, identity)
    assert validation.state == "Invalid"
    mismatch = HASH_MATCH[fmt].replace(".match", ".mismatch")
    assert mismatch in validation.failures
    result = checked(tampered, fmt, identity)
    assert result.present and result.signed_by_us and result.signature_valid
    assert not result.binding_valid and not result.valid


@pytest.mark.parametrize("fmt", FORMATS)
def test_signing_again_replaces_the_store(fmt, identity):
    once = original(fmt, identity)
    twice = run(sign_original(InProcessImage(once), fmt, STATEMENT, identity.signer)).python_bytes()
    assert len(twice) == len(once)  # the same statement: a store of the same length, swapped
    validation = trusted(twice, fmt, identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert len(validation.manifests) == 1
    assert validation.active_manifest != trusted(once, fmt, identity).active_manifest


def test_a_store_over_one_jpeg_segment_is_split_across_app11_segments(identity):
    statement = Statement("Fluxgate", "0.1.0", MODEL, CREATED, GENERATION, "x" * 150_000)
    image = marked(encoded(picture(64, 64), "jpeg"), "jpeg")
    data = run(sign_original(image, "jpeg", statement, identity.signer)).python_bytes()
    segments = re.findall(rb"\xff\xeb..JP\x00\x01(....)", data, re.DOTALL)  # APP11, CI, En
    assert [int.from_bytes(z, "big") for z in segments] == [1, 2, 3]  # its sequence numbers
    validation = trusted(data, "jpeg", identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert checked(data, "jpeg", identity).valid


@pytest.mark.parametrize("fmt", ["webp", "png"])
def test_a_simple_webp_and_an_unmarked_png_are_signed_too(fmt, identity):
    data = encoded(picture(40, 30), fmt)  # Pillow's WebP is VP8 alone: it becomes VP8X
    signed = run(sign_original(InProcessImage(data), fmt, STATEMENT, identity.signer))
    validation = trusted(signed.python_bytes(), fmt, identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    with Image.open(io.BytesIO(signed.python_bytes())) as image:
        image.load()


# -- variants -------------------------------------------------------------------------------

VARIANTS = [(256, "webp"), (512, "avif"), (1024, "jpeg")]


@pytest.fixture(scope="module")
def png_original(identity: Identity) -> bytes:
    return original("png", identity, size=(1024, 768))


def variant(
    parent: bytes,
    parent_fmt: str,
    width: int,
    fmt: str,
    identity: Identity,
    *,
    timestamper: Timestamper | None = None,
) -> bytes:
    with Image.open(io.BytesIO(parent)) as image:
        copy = image.convert("RGB").resize((width, width * 3 // 4))
    actions = ["c2pa.resized", "c2pa.transcoded"] if width < 1024 else ["c2pa.transcoded"]
    signed = run(
        sign_variant(
            marked(encoded(copy, fmt), fmt),
            fmt,
            STATEMENT,
            InProcessImage(parent),
            parent_fmt,
            actions,
            identity.signer,
            timestamper=timestamper,
        )
    )
    return signed.python_bytes()


@pytest.mark.parametrize(("width", "fmt"), VARIANTS)
def test_a_variant_carries_its_original_as_its_parent(width, fmt, png_original, identity):
    parent_label = trusted(png_original, "png", identity).active_manifest
    data = variant(png_original, "png", width, fmt, identity)
    validation = trusted(data, fmt, identity)
    assert validation.state == "Trusted", validation
    assert validation.error_codes == frozenset()
    resized = ("c2pa.resized",) if width < 1024 else ()
    assert validation.actions == ("c2pa.opened", *resized, "c2pa.transcoded")
    assert validation.digital_source_types == (TRAINED,)
    assert [(i.relationship, i.manifest) for i in validation.ingredients] == [
        ("parentOf", parent_label)
    ]
    assert validation.manifests == {parent_label, validation.active_manifest}
    assert "ingredient.manifest.validated" in validation.ingredient_success
    assert {"claimSignature.validated", HASH_MATCH[fmt]} <= validation.success
    result = checked(data, fmt, identity)
    assert result.valid and result.parent == parent_label and result.model == MODEL


def test_a_variant_of_an_original_without_credentials_is_signed_without_its_manifest(identity):
    parent = encoded(picture(128, 96), "png")
    data = variant(parent, "png", 256, "webp", identity)
    validation = trusted(data, "webp", identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert [(i.relationship, i.manifest) for i in validation.ingredients] == [("parentOf", None)]
    assert len(validation.manifests) == 1
    assert checked(data, "webp", identity).parent is None


def test_a_variant_of_an_original_signed_by_someone_else_does_not_carry_that_manifest(
    identity,
):
    parent = run(
        sign_original(
            InProcessImage(encoded(picture(64, 48), "png")), "png", STATEMENT, identity.other
        )
    ).python_bytes()
    data = variant(parent, "png", 256, "jpeg", identity)
    validation = trusted(data, "jpeg", identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert [i.manifest for i in validation.ingredients] == [None]
    assert len(validation.manifests) == 1


def test_a_variant_is_resized_or_transcoded_only(png_original, identity):
    with pytest.raises(CredentialsError):
        run(
            sign_variant(
                InProcessImage(png_original),
                "png",
                STATEMENT,
                InProcessImage(png_original),
                "png",
                ["c2pa.created"],
                identity.signer,
            )
        )


# -- what check says of other files ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_file_without_credentials_has_none(fmt, identity):
    assert checked(encoded(picture(32, 32), fmt), fmt, identity) == CredentialsCheck(present=False)


def test_a_manifest_signed_with_another_certificate_is_not_ours(identity):
    data = run(
        sign_original(
            InProcessImage(encoded(picture(32, 32), "png")), "png", STATEMENT, identity.other
        )
    ).python_bytes()
    assert trusted(data, "png", identity).state == "Trusted"  # a valid manifest, not ours
    result = checked(data, "png", identity)
    assert result.present and not result.signed_by_us and not result.valid
    # Not ours to vouch for: neither its signature nor its binding is checked here.
    assert result.signature_valid is None and result.binding_valid is None


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"not an image at all", "png"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR", "png"),  # cut inside its first chunk
        (b"\xff\xd8\xff\xe0\x00\x01", "jpeg"),  # a segment length below 2
        (b"RIFF\x10\x00\x00\x00WEBPVP8X", "webp"),  # a RIFF size beyond the file
        (b"\x00\x00\x00\x10ftypavif", "avif"),  # a box beyond the file
    ],
)
def test_an_unreadable_container_is_a_credentials_error(data, fmt, identity):
    with pytest.raises(CredentialsError):
        checked(data, fmt, identity)
    with pytest.raises(CredentialsError):
        run(sign_original(InProcessImage(data), fmt, STATEMENT, identity.signer))


def test_an_unknown_format_is_a_credentials_error(identity):
    with pytest.raises(CredentialsError):
        run(sign_original(InProcessImage(b"GIF89a"), "gif", STATEMENT, identity.signer))


# -- signing reads the image in small ranges -------------------------------------------------


@dataclass(frozen=True)
class RangesOnly:
    """Image bytes that refuse to be copied whole into Python, and record the ranges read."""

    data: bytes
    reads: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    def head(self, limit: int = HEAD_BYTES) -> bytes:
        return self.data[:limit]

    def read(self, start: int, end: int) -> bytes:
        self.reads.append((start, end))
        return self.data[start:end]

    def splice(self, parts: Sequence[SplicePart]) -> RangesOnly:
        return RangesOnly(InProcessImage(self.data).splice(parts).data, self.reads)

    def image_url(self, mime: str) -> Any:
        raise AssertionError("not needed to sign")

    async def sha256(self) -> str:
        return await InProcessImage(self.data).sha256()

    async def base64(self) -> str:
        raise AssertionError("not needed to sign")

    def python_bytes(self) -> bytes:
        raise AssertionError("the image was copied into Python")


@pytest.mark.parametrize("fmt", FORMATS)
def test_signing_and_checking_read_headers_and_the_store_only(fmt, png_original, identity):
    with Image.open(io.BytesIO(png_original)) as image:
        big = encoded(image.convert("RGB"), fmt)
    assert len(big) > 2 * HEAD_BYTES
    image = RangesOnly(marked(big, fmt).python_bytes())
    parent = RangesOnly(png_original)
    signed = run(
        sign_variant(image, fmt, STATEMENT, parent, "png", ["c2pa.transcoded"], identity.signer)
    )
    assert isinstance(signed, RangesOnly)
    assert run(check(signed, fmt, identity.signer)).valid
    reads = image.reads + parent.reads
    assert max((end - start for start, end in reads), default=0) < 16 * 1024  # headers, store
    assert trusted(signed.data, fmt, identity).state == "Trusted"


# -- manifests written by c2pa-rs ------------------------------------------------------------


def c2pa_rs_signed(data: bytes, fmt: str, signer: TestSigner) -> bytes:
    """``data`` signed by ``c2pa-rs`` (through c2pa-python's Builder) with our key."""
    mime = {"png": "image/png", "avif": "image/avif", "jpeg": "image/jpeg"}[fmt]
    definition = {
        "claim_generator_info": [{"name": "c2pa-rs test", "version": "1"}],
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED}]},
            }
        ],
    }

    def sign(message: bytes) -> bytes:
        return signer.key.sign(message, ec.ECDSA(hashes.SHA256()))

    settings = {"builder": {"thumbnail": {"enabled": False}}}
    with (
        c2pa.Context.from_dict(settings) as context,
        c2pa.Signer.from_callback(sign, c2pa.C2paSigningAlg.ES256, signer.leaf_pem) as c2pa_signer,
        c2pa.Builder(definition, context) as builder,
    ):
        out = io.BytesIO()
        builder.sign(c2pa_signer, mime, io.BytesIO(data), out)
        return out.getvalue()


@pytest.mark.parametrize("fmt", ["png", "jpeg", "avif"])
def test_a_c2pa_rs_manifest_signed_with_our_key_checks_as_ours(fmt, identity):
    data = c2pa_rs_signed(encoded(picture(48, 32), fmt), fmt, identity.signer)
    result = checked(data, fmt, identity)
    assert result.valid and result.software_agent is None and result.model is None
    assert not checked(flipped(data, pixel_offset(data, fmt)), fmt, identity).binding_valid


def test_a_variant_of_a_c2pa_rs_signed_original_carries_its_manifest(identity):
    parent = c2pa_rs_signed(encoded(picture(320, 240), "png"), "png", identity.signer)
    parent_label = trusted(parent, "png", identity).active_manifest
    data = variant(parent, "png", 256, "avif", identity)
    validation = trusted(data, "avif", identity)
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert [i.manifest for i in validation.ingredients] == [parent_label]
    assert "ingredient.manifest.validated" in validation.ingredient_success


# -- hostile files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signed_files(identity: Identity) -> dict[tuple[str, str], bytes]:
    """Small originals of each format, and a variant (two manifests, an ingredient)."""
    files = {("original", fmt): original(fmt, identity, size=(32, 24)) for fmt in FORMATS}
    files["variant", "jpeg"] = variant(files["original", "png"], "png", 24, "jpeg", identity)
    return files


def mutated(data: bytes, draw: st.DrawFn) -> bytes:
    """``data`` with one of what a hostile upload does: a flipped byte, a length or count
    field made huge or zero, bytes cut or inserted (mostly where the headers and the
    manifest store are: the first few KiB)."""
    where = draw(st.integers(0, min(len(data), 6000) - 1) | st.integers(0, len(data) - 1))
    kind = draw(st.sampled_from(["flip", "huge", "zero", "cut", "insert", "truncate"]))
    if kind == "flip":
        return flipped(data, where)
    if kind in ("huge", "zero"):
        word = b"\xff\xff\xff\xff" if kind == "huge" else b"\x00\x00\x00\x00"
        return data[:where] + word + data[where + 4 :]
    if kind == "cut":
        return data[:where] + data[where + draw(st.integers(1, 64)) :]
    if kind == "insert":
        return data[:where] + draw(st.binary(min_size=1, max_size=32)) + data[where:]
    return data[:where]


@pytest.mark.parametrize(
    ("kind", "fmt"), [*(("original", fmt) for fmt in FORMATS), ("variant", "jpeg")]
)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.data_too_large])
@given(draw=st.data())
def test_a_mutated_file_is_answered_or_refused_never_a_crash(
    kind, fmt, signed_files, identity, draw
):
    data = mutated(signed_files[kind, fmt], draw.draw)
    try:
        result = checked(data, fmt, identity)
    except CredentialsError:
        return
    assert isinstance(result, CredentialsCheck)
    with contextlib.suppress(CredentialsError):  # signing it: done, or refused
        run(sign_original(InProcessImage(data), fmt, STATEMENT, identity.signer))


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_store_is_found_where_c2pa_rs_finds_it(fmt, identity):
    data = original(fmt, identity)
    store = manifest_store(InProcessImage(data), fmt)
    assert store is not None and store[4:8] == b"jumb" and store[16:20] == b"c2pa"
    with c2pa.Reader(MIME_TYPES[fmt], io.BytesIO(data)) as reader:
        label = json.loads(reader.json())["active_manifest"]
    assert label.encode() in store
    assert manifest_store(InProcessImage(encoded(picture(8, 8), fmt)), fmt) is None


# -- time-stamps (RFC 3161, sigTst2) ---------------------------------------------------------

TIME_STAMPED = {"timeStamp.validated", "timeStamp.trusted"}


@pytest.fixture
def tsa() -> Iterator[TimestampAuthority]:
    """The time-stamp authority double, on the real clock (as the validator is)."""
    with TimestampAuthority() as authority:
        yield authority


def signature_of(data: bytes, fmt: str) -> tuple[bytes, bytes, dict[str | int, cbor.Value]]:
    """The active manifest's COSE_Sign1: its protected header, signature, unprotected header."""
    store = manifest_store(InProcessImage(data), fmt)
    assert store is not None
    box = verify.parse_store(store)[-1].signature_box.content(b"cbor")
    assert box is not None
    sign1 = cbor.decode(box)
    assert isinstance(sign1, cbor.Tag) and isinstance(sign1.value, list)
    protected, unprotected, _payload, signature = sign1.value
    assert isinstance(protected, bytes) and isinstance(signature, bytes)
    assert isinstance(unprotected, dict)
    return protected, signature, unprotected


def stamped_imprint(data: bytes, fmt: str) -> bytes:
    """What the TSA must have been asked to stamp for this file's signature."""
    protected, signature, _ = signature_of(data, fmt)
    return hashlib.sha256(countersign_data(protected, signature)).digest()


def time_stamp_codes(validation: Validation) -> set[str]:
    codes = validation.success | validation.informational | validation.failures
    return {code for code in codes if code.startswith("timeStamp.")}


def test_a_time_stamped_original_and_its_variant_are_trusted_with_the_tsas_root(tsa, identity):
    """Each signature is countersigned by the TSA, over that very signature; with the TSA's
    root among the anchors c2pa-rs validates and trusts both time-stamps, and :func:`check`
    reads the files as ours."""
    stamper = HttpxTimestamper(tsa.url)
    parent = original("png", identity, (320, 240), timestamper=stamper)
    child = variant(parent, "png", 256, "webp", identity, timestamper=stamper)
    asked = [read_request(body) for body, _headers in tsa.requests]
    assert [request.imprint for request in asked] == [
        stamped_imprint(parent, "png"),
        stamped_imprint(child, "webp"),
    ]
    assert all(request.cert_req and request.nonce for request in asked)
    assert asked[0].nonce != asked[1].nonce  # drawn afresh for every request
    parent_label = None
    for data, fmt in ((parent, "png"), (child, "webp")):
        validation = validate(data, fmt, identity.root_pem, also_trusted=[tsa.root_pem])
        assert validation is not None
        assert validation.state == "Trusted", validation
        assert validation.error_codes == frozenset()
        assert validation.success >= TIME_STAMPED
        _, _, unprotected = signature_of(data, fmt)
        assert list(unprotected) == [SIG_TST2, "pad"]
        token = unprotected[SIG_TST2]
        assert isinstance(token, dict) and list(token) == ["tstTokens"]
        result = checked(data, fmt, identity)
        assert result.valid and result.parent == parent_label
        parent_label = validation.active_manifest
    assert "ingredient.manifest.validated" in validation.ingredient_success


def test_without_the_tsas_root_the_time_stamp_is_untrusted_and_the_rest_holds(tsa, identity):
    data = original("png", identity, timestamper=HttpxTimestamper(tsa.url))
    validation = trusted(data, "png", identity)
    assert validation.state == "Trusted" and validation.failures == frozenset()
    assert "timeStamp.untrusted" in validation.informational
    assert "timeStamp.trusted" not in validation.success


def test_the_time_stamp_outlives_the_signing_certificate(identity):
    """Signed while the certificate was valid (the TSA's clock two hours back, in the hour
    the certificate was still valid: all a validator knows of when a file was signed), read
    once it expired: trusted with the time-stamp; without one, or with one from a TSA it
    does not trust, the certificate is checked now, and it has expired."""
    two_hours_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    with TimestampAuthority(clock=lambda: two_hours_ago) as authority:
        stamper = HttpxTimestamper(authority.url)
        stamped = original("png", identity, timestamper=stamper, signer=identity.expired)
    bare = original("png", identity, signer=identity.expired)
    validation = validate(stamped, "png", identity.root_pem, also_trusted=[authority.root_pem])
    assert validation is not None
    assert validation.state == "Trusted", validation
    assert validation.failures == frozenset() and validation.success >= TIME_STAMPED
    for data, anchors in ((bare, [authority.root_pem]), (stamped, [])):
        validation = validate(data, "png", identity.root_pem, also_trusted=anchors)
        assert validation is not None
        assert validation.state == "Invalid"
        assert "signingCredential.expired" in validation.failures


def test_a_time_stamp_takes_the_reserved_space_and_nothing_else_moves(tsa, identity):
    """The same statement on the same image: with a TSA, the signature is the reservation
    longer, whatever the token's length; without one, it is as it always was (an empty
    unprotected header, nothing reserved)."""
    plain = original("png", identity)
    stamped = original("png", identity, timestamper=HttpxTimestamper(tsa.url))
    assert len(stamped) == len(plain) + TIMESTAMP_RESERVE_BYTES
    assert signature_of(plain, "png")[2] == {}
    protected, signature, unprotected = signature_of(stamped, "png")
    bare = cose.sign1(protected, signature)
    assert len(cose.sign1(protected, signature, unprotected)) == len(bare) + (
        TIMESTAMP_RESERVE_BYTES
    )


WHY_NO_TIME_STAMP = {
    "http-500": "the time-stamp authority at 127.0.0.1 answered HTTP 500",
    "reject": "did not grant the request (rejection)",
    "wrong-nonce": "answers another request",
    "stall": "the time-stamp authority at 127.0.0.1 did not answer in time",
    "closed": "the time-stamp authority at 127.0.0.1 could not be reached",
}


@pytest.mark.parametrize("behaviour", list(WHY_NO_TIME_STAMP))
def test_a_tsa_that_fails_leaves_the_image_signed_without_a_time_stamp(
    behaviour, tsa, identity, caplog
):
    """Not a failure to sign: the signature is made, the reservation is all padding (the
    file as long as a time-stamped one), validators check the certificate now, and a
    warning says why (naming the TSA's host at most, never its URL's path or query)."""
    stamped = original("png", identity, timestamper=HttpxTimestamper(tsa.url))
    url = f"{tsa.url}?access_key=s3cr3t-key"
    if behaviour == "closed":
        tsa.stop()
    else:
        tsa.behaviour = behaviour
    caplog.set_level(logging.WARNING, logger="fluxgate.provenance")
    data = original("png", identity, timestamper=HttpxTimestamper(url, timeout=0.5))
    assert len(data) == len(stamped)
    _, _, unprotected = signature_of(data, "png")
    assert list(unprotected) == ["pad"]
    validation = validate(data, "png", identity.root_pem, also_trusted=[tsa.root_pem])
    assert validation is not None
    assert validation.state == "Trusted" and validation.error_codes == frozenset()
    assert time_stamp_codes(validation) == set()
    assert checked(data, "png", identity).valid
    warnings = [r for r in caplog.records if r.name == "fluxgate.provenance"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    message = warnings[0].getMessage()
    assert message.startswith("C2PA signature made without a time-stamp: ")
    assert WHY_NO_TIME_STAMP[behaviour] in message
    assert "s3cr3t" not in message and "/tsa" not in message


class Inflated:
    """A TSA whose tokens carry ``copies`` more copies of its root certificate: a valid
    token (certificates are not signed over), as long as a TSA sending its whole chain
    may make one."""

    def __init__(self, tsa: TimestampAuthority, copies: int) -> None:
        self.tsa = tsa
        self.copies = copies

    async def stamp(self, request_der: bytes) -> bytes:
        status, token = der.read_one(
            self.tsa.respond(request_der), der.SEQUENCE, "response"
        ).children("response")
        content_type, content = token.children("token")
        signed_data = der.read_one(content.body, der.SEQUENCE, "SignedData")
        version, digests, encapsulated, certificates, signer_infos = signed_data.children("sd")
        root = self.tsa.root.public_bytes(serialization.Encoding.DER)
        more = tlv(0xA0, certificates.body + root * self.copies)
        inflated = seq(
            version.encoded, digests.encoded, encapsulated.encoded, more, signer_infos.encoded
        )
        return seq(status.encoded, seq(content_type.encoded, explicit(0, inflated)))


def test_a_token_too_large_for_the_reservation_is_refused(tsa, identity):
    root_length = len(tsa.root.public_bytes(serialization.Encoding.DER))
    copies = TIMESTAMP_RESERVE_BYTES // root_length + 1
    with pytest.raises(CredentialsError, match="time-stamp token does not fit"):
        original("png", identity, timestamper=Inflated(tsa, copies))


TOKEN_LENGTH_MARGIN = 16


def test_a_token_that_just_fits_is_padded_to_the_reservation(tsa, identity):
    """Near the end of the reservation (the padding a few bytes long, its head shorter):
    the file is as long as with any token, and c2pa-rs still trusts the time-stamp."""
    reference = original("png", identity, timestamper=HttpxTimestamper(tsa.url))
    root_length = len(tsa.root.public_bytes(serialization.Encoding.DER))
    container_length = len(cbor.encode(signature_of(reference, "png")[2][SIG_TST2]))
    # The header: its two labels (8 + 4 bytes), the container and the padding's head (3),
    # with a margin as tokens differ by a few bytes (their serial, genTime, signature).
    room = TIMESTAMP_RESERVE_BYTES - 12 - container_length - 3 - TOKEN_LENGTH_MARGIN
    copies = room // root_length
    data = original("png", identity, timestamper=Inflated(tsa, copies))
    assert len(data) == len(reference)
    padding = signature_of(data, "png")[2]["pad"]
    assert isinstance(padding, bytes) and len(padding) < root_length + 2 * TOKEN_LENGTH_MARGIN
    validation = validate(data, "png", identity.root_pem, also_trusted=[tsa.root_pem])
    assert validation is not None and validation.state == "Trusted", validation
    assert validation.success >= TIME_STAMPED


@settings(max_examples=200, deadline=None)
@given(
    header=st.binary(max_size=600),
    reserve=st.integers(5, 700) | st.sampled_from([29, 30, 31, 262, 263, 264, 65545, 65546]),
)
def test_a_reserved_signature_is_exactly_its_size_whatever_the_header(header, reserve):
    """Padded with "pad" (and "pad2" where one byte string cannot hit the size: its head
    grows at 24, 256 and 65,536 bytes), or refused when the header does not fit."""
    protected = cose.protected_header([b"\x30" * 300])
    signature = bytes(range(64))
    unprotected = {SIG_TST2: {"tstTokens": [{"val": header}]}}
    bare = len(cose.sign1(protected, signature))
    try:
        encoded_sign1 = cose.sign1(protected, signature, unprotected, reserve=reserve)
    except cose.HeaderTooLarge:
        assert len(cose.sign1(protected, signature, unprotected)) + 5 > bare + reserve
        return
    assert len(encoded_sign1) == bare + reserve
    parsed = cose.parse_sign1(encoded_sign1)
    assert (parsed.protected, parsed.signature) == (protected, signature)
    decoded = cbor.decode(encoded_sign1)
    assert isinstance(decoded, cbor.Tag) and isinstance(decoded.value, list)
    written = decoded.value[1]
    assert isinstance(written, dict)
    assert written[SIG_TST2] == unprotected[SIG_TST2]
    assert set(written) <= {SIG_TST2, "pad", "pad2"}
    assert all(
        written[pad] == bytes(len(written[pad])) for pad in ("pad", "pad2") if pad in written
    )


def test_the_padding_needs_a_second_byte_string_where_one_cannot_hit_the_size():
    """An empty header, 4 + 1 + 24 bytes reserved: "pad" of 23 bytes is one short, of 24
    one over (its head takes a second byte); c2pa-rs then adds "pad2", as here."""
    protected = cose.protected_header([b"\x30" * 300])
    signature = bytes(64)
    bare = len(cose.sign1(protected, signature))
    encoded_sign1 = cose.sign1(protected, signature, reserve=29)
    assert len(encoded_sign1) == bare + 29
    decoded = cbor.decode(encoded_sign1)
    assert isinstance(decoded, cbor.Tag) and isinstance(decoded.value, list)
    assert list(decoded.value[1]) == ["pad", "pad2"]


def test_bytes_slipped_into_the_excluded_range_beside_a_smaller_store_break_the_binding(
    identity,
):
    """The excluded range is the one we signed; the JUMBF labels are not signed. A store
    rebuilt with a shorter manifest label leaves room, inside that range, for a chunk
    that changes how the image renders (a gAMA): the binding must fail, since the range
    no longer holds exactly the store."""
    data = run(
        sign_original(
            InProcessImage(encoded(picture(32, 32), "png")), "png", STATEMENT, identity.signer
        )
    ).python_bytes()
    store_start = data.index(b"caBX") - 4
    (length,) = struct.unpack(">I", data[store_start : store_start + 4])
    store = data[store_start + 8 : store_start + 8 + length]
    root, active = jumbf.parse(store), verify.parse_store(store)[-1]
    extra = png_chunk(b"gAMA", struct.pack(">I", 1000))
    shorter = jumbf.superbox(
        jumbf.MANIFEST,
        active.label[: -len(extra)],
        *[child.raw for child in active.box.children if isinstance(child, jumbf.SuperBox)],
    )
    region = png_chunk(b"caBX", jumbf.superbox(root.uuid, root.label, shorter)) + extra
    assert len(region) == length + 12  # the same excluded range, filled differently
    forged = data[:store_start] + region + data[store_start + length + 12 :]
    result = checked(forged, "png", identity)
    assert result.signed_by_us and result.signature_valid  # the claim is untouched
    assert result.binding_valid is False and not result.valid
