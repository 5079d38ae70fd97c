"""The operator's C2PA signing identity: the certificate profile a claim signer needs, the
key that must be the leaf's, the local signer, and the development identity.

Chains are made with ``cryptography`` (``tests/support/c2pa_chain.py``), independently of
the code under test. Where a profile is refused, the reference validator (c2pa-rs, through
``c2pa-python``) is asked too, so the rules checked here are the ones validators apply. The
Workers signer (WebCrypto) is tested in Pyodide: ``tests/pyodide/cases.py``, ``case_c2pa_*``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import stat
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from fluxgate.local.c2pa_signer import (
    CHAIN_FILE,
    KEY_FILE,
    ROOT_FILE,
    LocalClaimSigner,
    development_chain,
    local_claim_signer,
)
from fluxgate.provenance.certificates import (
    CertificateProfileError,
    SigningChain,
    SigningIdentityError,
    private_key_der,
    private_key_public_point,
)

from ..support.c2pa_chain import (
    ANY_EXTENDED_KEY_USAGE,
    EMAIL_PROTECTION,
    SERVER_AUTH,
    TIME_STAMPING,
    IssuedChain,
    issue_chain,
    key_usage,
    name,
    pem,
    pkcs8_pem,
)
from ..support.image_files import image_bytes

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)
LEAF = "the signing certificate (CN=Fluxgate test signer)"


def now() -> float:
    return NOW.timestamp()


def point(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def assert_no_key_material(message: str, *pems: str) -> None:
    """No 12 characters in a row of any PEM's base64 are in ``message``."""
    for text in pems:
        body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
        leaked = [body[i : i + 12] for i in range(len(body) - 11) if body[i : i + 12] in message]
        assert leaked == [], message


def refusal(chain_pem: str) -> str:
    with pytest.raises(SigningIdentityError) as refused:
        SigningChain.from_pem(chain_pem, now())
    return str(refused.value)


# -- The certificate chain ---------------------------------------------------------------


def test_a_chain_with_the_profile_is_read_leaf_first_and_its_root_kept_apart() -> None:
    issued = issue_chain(now=NOW, with_intermediate=True)
    assert issued.intermediate is not None
    chain = SigningChain.from_pem(issued.chain_with_root_pem, now())
    der = serialization.Encoding.DER
    assert chain.der == (issued.leaf.public_bytes(der), issued.intermediate.public_bytes(der))
    assert chain.anchor == issued.root.public_bytes(der)
    assert isinstance(issued.key, ec.EllipticCurvePrivateKey)
    assert chain.leaf_public_point == point(issued.key)
    assert chain.leaf_spki == issued.key.public_key().public_bytes(
        der, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert chain.not_before == max(
        c.not_valid_before_utc.timestamp() for c in (issued.leaf, issued.intermediate)
    )
    assert chain.not_after == (NOW + 365 * DAY).timestamp()  # the leaf ends first


def test_a_chain_without_its_root_is_read_as_it_is() -> None:
    issued = issue_chain(now=NOW)
    chain = SigningChain.from_pem(issued.chain_pem, now())
    assert len(chain.der) == 1 and chain.anchor is None


def test_validity_is_read_from_utctime_and_generalizedtime() -> None:
    """RFC 5280: UTCTime through 2049, GeneralizedTime from 2050."""
    end = dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    issued = issue_chain(now=NOW, not_before=NOW - DAY, not_after=end)
    chain = SigningChain.from_pem(issued.chain_pem, now())
    assert (chain.not_before, chain.not_after) == ((NOW - DAY).timestamp(), 4102444800.0)


def test_text_around_the_pem_blocks_is_allowed() -> None:
    issued = issue_chain(now=NOW)
    text = f"Bag Attributes\n  friendlyName: signer\n{issued.chain_pem}\n# the root:\n"
    assert len(SigningChain.from_pem(text + issued.root_pem, now()).der) == 1


BROKEN_PROFILES: list[tuple[str, dict[str, Any], str, bool]] = [
    # (case, issue_chain's keywords, what the message says, the reference validator refuses)
    ("rsa leaf", {"leaf_key": "RSA"}, "has a key that is RSA, not EC P-256", False),
    ("p-384 leaf", {"leaf_key": "P-384"}, "has an EC key on curve P-384, not P-256", False),
    ("no keyUsage", {"with_key_usage": False}, "has no keyUsage extension", True),
    (
        "no digitalSignature",
        {"digital_signature": False, "key_cert_sign": False},
        "its keyUsage lacks digitalSignature",
        True,
    ),
    ("keyCertSign", {"key_cert_sign": True}, "its keyUsage has keyCertSign", True),
    ("no EKU", {"ekus": None}, "has no extendedKeyUsage extension", True),
    (
        "anyExtendedKeyUsage",
        {"ekus": [EMAIL_PROTECTION, ANY_EXTENDED_KEY_USAGE]},
        "its extendedKeyUsage has anyExtendedKeyUsage",
        True,
    ),
    (
        "no claim-signing EKU",
        {"ekus": [SERVER_AUTH]},
        "its extendedKeyUsage has none of the purposes C2PA accepts",
        True,
    ),
    (
        "timeStamping beside another",
        {"ekus": [EMAIL_PROTECTION, TIME_STAMPING]},
        "its extendedKeyUsage has timeStamping",
        True,
    ),
    ("CA leaf", {"leaf_is_ca": True}, "is a CA certificate (basicConstraints cA)", True),
    (
        "no authorityKeyIdentifier",
        {"with_authority_key_id": False},
        "has no authorityKeyIdentifier extension",
        True,
    ),
    (
        "expired",
        {"not_before": NOW - 30 * DAY, "not_after": NOW - DAY},
        f"has expired: on {(NOW - DAY):%Y-%m-%d %H:%M:%S} UTC",
        True,
    ),
    (
        "not valid yet",
        {"not_before": NOW + DAY, "not_after": NOW + 30 * DAY},
        f"is not valid yet: from {(NOW + DAY):%Y-%m-%d %H:%M:%S} UTC",
        True,
    ),
    (
        "unknown critical extension",
        {"critical_extension": x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"")},
        "has a critical extension C2PA validators do not handle (1.2.3.4)",
        True,
    ),
]


@pytest.mark.parametrize(
    ("keywords", "problem"),
    [pytest.param(kw, problem, id=case) for case, kw, problem, _refused in BROKEN_PROFILES],
)
def test_a_leaf_without_the_claim_signer_profile_is_refused_saying_why(
    keywords: dict[str, Any], problem: str
) -> None:
    issued = issue_chain(now=NOW, **keywords)
    message = refusal(issued.chain_with_root_pem)
    assert message.startswith(f"{LEAF} {problem}") or message.startswith(f"{LEAF}: {problem}"), (
        message
    )
    assert_no_key_material(message, issued.key_pem)


def test_the_chain_is_refused_out_of_order_naming_the_pair() -> None:
    issued = issue_chain(now=NOW, with_intermediate=True)
    assert issued.intermediate is not None
    shuffled = pem(issued.leaf) + issued.root_pem + pem(issued.intermediate)
    assert refusal(shuffled).startswith(
        f"the certificate chain is out of order: {LEAF} is not issued by certificate 2 "
        "(CN=Fluxgate test root)"
    )
    stranger = issue_chain(now=NOW, with_intermediate=True).intermediate
    assert stranger is not None
    assert refusal(pem(issued.leaf) + pem(stranger)).startswith(
        f"the certificate chain is out of order: {LEAF} is not issued by certificate 2 "
        "(CN=Fluxgate test intermediate)"
    )


def test_a_certificate_after_the_leaf_must_be_a_ca() -> None:
    issued, other = issue_chain(now=NOW), issue_chain(now=NOW)
    assert refusal(issued.chain_pem + other.chain_pem).startswith(
        "certificate 2 (CN=Fluxgate test signer) follows the signing certificate but is not a CA"
    )


def test_a_self_signed_leaf_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name("Fluxgate test signer"))
        .issuer_name(name("Fluxgate test signer"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + DAY)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    assert refusal(pem(certificate)).startswith(f"{LEAF} is self-signed")


def test_the_chain_must_hold_certificates_only() -> None:
    issued = issue_chain(now=NOW)
    message = refusal(issued.chain_pem + issued.key_pem)
    assert message.startswith("the certificate chain holds a PRIVATE KEY block: the private key")
    assert_no_key_material(message, issued.key_pem)
    assert refusal("") == "the certificate chain holds no CERTIFICATE block"
    assert refusal("-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n").startswith(
        "the certificate chain has a CERTIFICATE block that is not base64"
    )
    assert "'\\n' escapes" in refusal(issued.chain_pem.replace("\n", "\\n").replace("-", "_"))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        pytest.param(lambda der: der[:-1], "is truncated", id="truncated"),
        pytest.param(lambda der: der + b"\x00", "has bytes after its end", id="trailing bytes"),
        pytest.param(
            lambda der: b"\x30\x80" + der[4:] + b"\x00\x00", "indefinite length", id="BER"
        ),
        pytest.param(
            lambda der: der[:1] + b"\x83\x00" + der[2:], "not in its shortest form", id="length"
        ),
    ],
)
def test_a_certificate_that_is_not_strict_der_is_refused(
    damage: Callable[[bytes], bytes], problem: str
) -> None:
    der = issue_chain(now=NOW).leaf.public_bytes(serialization.Encoding.DER)
    assert der[1] == 0x82  # a two-octet length, which the damage relies on
    body = "\n".join(textwrap.wrap(base64.b64encode(damage(der)).decode(), 64))
    message = refusal(f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n")
    assert message.startswith("the signing certificate is not a valid X.509 certificate: ")
    assert problem in message, message


def test_a_chain_stops_being_current_when_its_first_certificate_expires() -> None:
    chain = SigningChain.from_pem(issue_chain(now=NOW).chain_pem, now())
    chain.check_current(chain.not_after - 1)
    with pytest.raises(CertificateProfileError, match=r"^the certificate chain expired at "):
        chain.check_current(chain.not_after)


# -- The signing key ---------------------------------------------------------------------


def test_a_pkcs8_p256_key_is_read_and_its_public_point_known_without_cryptography() -> None:
    issued = issue_chain(now=NOW)
    der = private_key_der(issued.key_pem)
    assert der == issued.key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert isinstance(issued.key, ec.EllipticCurvePrivateKey)
    assert private_key_public_point(der) == point(issued.key)


def _traditional(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
    )


def _encrypted(key: Any) -> str:
    return str(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"a passphrase"),
        ).decode()
    )


KEY_REFUSALS: list[tuple[str, Callable[[IssuedChain], str], str]] = [
    ("SEC1", lambda c: _traditional(c.key), "the signing key is a SEC1 'EC PRIVATE KEY'"),
    ("encrypted", lambda c: _encrypted(c.key), "the signing key is encrypted"),
    (
        "RSA PKCS#8",
        lambda c: pkcs8_pem(issue_chain(leaf_key="RSA").key),
        "the signing key is RSA, not EC P-256",
    ),
    (
        "RSA traditional",
        lambda c: _traditional(issue_chain(leaf_key="RSA").key),
        "the signing key is an RSA key",
    ),
    (
        "P-384",
        lambda c: pkcs8_pem(issue_chain(leaf_key="P-384").key),
        "the signing key is on curve P-384, not P-256",
    ),
    ("certificate", lambda c: pem(c.leaf), "the signing key holds a certificate"),
    ("two keys", lambda c: c.key_pem + c.key_pem, "the signing key must be one PEM block"),
    ("nothing", lambda c: "", "the signing key must be one PEM block"),
]


@pytest.mark.parametrize(
    ("make", "problem"), [pytest.param(m, p, id=case) for case, m, p in KEY_REFUSALS]
)
def test_a_key_that_is_not_pkcs8_p256_is_refused_saying_why(
    make: Callable[[IssuedChain], str], problem: str
) -> None:
    issued = issue_chain(now=NOW)
    text = make(issued)
    with pytest.raises(SigningIdentityError) as refused:
        private_key_der(text)
    assert str(refused.value).startswith(problem), str(refused.value)
    assert_no_key_material(str(refused.value), text, issued.key_pem)
    # The local signer says the same.
    with pytest.raises(SigningIdentityError) as again:
        LocalClaimSigner(text, issued.chain_pem)
    assert str(again.value) == str(refused.value)


# -- The local signer --------------------------------------------------------------------


def test_local_signatures_are_64_bytes_of_r_and_s_that_cryptography_verifies() -> None:
    issued = issue_chain(now=NOW, with_intermediate=True)
    signer = LocalClaimSigner(issued.key_pem, issued.chain_with_root_pem)
    assert signer.chain == SigningChain.from_pem(issued.chain_pem, now()).der  # no root
    message = b"a COSE Sig_structure"
    signature = asyncio.run(signer.sign(message))
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    public = issued.leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        public.verify(encode_dss_signature(r, s), message + b"!", ec.ECDSA(hashes.SHA256()))
    # And the other way: cryptography's signature, as r || s, is what verify takes.
    assert isinstance(issued.key, ec.EllipticCurvePrivateKey)
    theirs = decode_dss_signature(issued.key.sign(message, ec.ECDSA(hashes.SHA256())))
    raw = b"".join(n.to_bytes(32, "big") for n in theirs)
    assert asyncio.run(signer.verify(message, raw)) is True
    assert asyncio.run(signer.verify(message + b"!", raw)) is False
    assert asyncio.run(signer.verify(message, raw[:-1])) is False
    assert asyncio.run(signer.verify(message, bytes(64))) is False


def test_the_local_signer_refuses_a_key_that_is_not_the_leafs() -> None:
    issued, other = issue_chain(now=NOW), issue_chain(now=NOW)
    with pytest.raises(SigningIdentityError) as refused:
        LocalClaimSigner(other.key_pem, issued.chain_pem)
    assert (
        str(refused.value) == "the signing key does not match the signing certificate's public key"
    )


def test_the_local_signer_stops_signing_when_the_chain_expires() -> None:
    issued = issue_chain(now=NOW)
    clock = [now()]
    signer = LocalClaimSigner(issued.key_pem, issued.chain_pem, lambda: clock[0])
    asyncio.run(signer.sign(b"before"))
    clock[0] = (NOW + 365 * DAY).timestamp()
    with pytest.raises(CertificateProfileError, match="expired"):
        asyncio.run(signer.sign(b"after"))


def test_a_local_identity_is_both_pems_or_the_development_one(tmp_path: Path) -> None:
    issued = issue_chain(now=NOW)
    configured = local_claim_signer(tmp_path, issued.key_pem, issued.chain_pem)
    assert configured.chain == SigningChain.from_pem(issued.chain_pem, now()).der
    assert not (tmp_path / "c2pa").exists()
    development = local_claim_signer(tmp_path, None, None)
    assert (
        development.chain
        == SigningChain.from_pem((tmp_path / "c2pa" / CHAIN_FILE).read_text(), time.time()).der
    )
    for key, chain, missing in ((issued.key_pem, None, "chain"), (None, issued.chain_pem, "key")):
        with pytest.raises(SigningIdentityError, match=f"without its {missing}"):
            local_claim_signer(tmp_path, key, chain)


# -- The development identity ------------------------------------------------------------


def test_the_development_chain_is_made_once_then_reused(tmp_path: Path) -> None:
    key, chain, root = development_chain(tmp_path)
    folder = tmp_path / "c2pa"
    assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
    assert (folder / KEY_FILE).read_text() == key
    assert (folder / CHAIN_FILE).read_text() == chain
    assert (folder / ROOT_FILE).read_text() == root
    assert development_chain(tmp_path) == (key, chain, root)

    leaf = x509.load_pem_x509_certificate(chain.encode())
    anchor = x509.load_pem_x509_certificate(root.encode())
    leaf.verify_directly_issued_by(anchor)
    common_names = [
        c.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value for c in (leaf, anchor)
    ]
    assert common_names == [
        "Fluxgate development signer — untrusted",
        "Fluxgate development root — untrusted",
    ]
    signing = SigningChain.from_pem(chain, time.time())  # the claim signer profile
    assert len(signing.der) == 1
    signer = LocalClaimSigner(key, chain)
    assert asyncio.run(signer.verify(b"m", asyncio.run(signer.sign(b"m"))))


def test_the_development_chain_is_renewed_before_it_expires(tmp_path: Path) -> None:
    first = development_chain(tmp_path)
    leaf = x509.load_pem_x509_certificate(first[1].encode())
    ends = leaf.not_valid_after_utc.timestamp()
    assert development_chain(tmp_path, lambda: ends - 31 * 86400) == first
    renewed = development_chain(tmp_path, lambda: ends - 29 * 86400)
    assert renewed != first
    assert all(part != old for part, old in zip(renewed, first, strict=True))
    assert development_chain(tmp_path, lambda: ends - 29 * 86400) == renewed


def test_development_files_that_do_not_belong_together_are_replaced(tmp_path: Path) -> None:
    first = development_chain(tmp_path)
    key_file = tmp_path / "c2pa" / KEY_FILE
    key_file.write_text(issue_chain().key_pem)  # not the leaf's key
    replaced = development_chain(tmp_path)
    assert replaced[0] != first[0] and replaced[1] != first[1]
    key_file.chmod(0o644)  # a key file someone made readable is tightened, and kept
    assert development_chain(tmp_path) == replaced
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


# -- What the reference validator says ----------------------------------------------------


def c2pa_sign(chain_pem: str, sign: Callable[[bytes], bytes], anchor_pem: str) -> str:
    """Sign a JPEG with c2pa-python (c2pa-rs), then read it trusting ``anchor_pem``: the
    manifest's validation state. c2pa-rs checks the signing certificate's profile as it
    signs, and raises then."""
    import c2pa

    manifest = {
        "claim_generator_info": [{"name": "fluxgate-tests", "version": "0"}],
        "format": "image/jpeg",
        "title": "signing identity",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": "http://cv.iptc.org/newscodes/"
                            "digitalsourcetype/trainedAlgorithmicMedia",
                        }
                    ]
                },
            }
        ],
    }
    context = c2pa.Context.from_dict({"trust": {"user_anchors": anchor_pem}})
    source, signed = io.BytesIO(image_bytes("JPEG", 16, 16)), io.BytesIO()
    with (
        c2pa.Signer.from_callback(sign, c2pa.C2paSigningAlg.ES256, chain_pem, None) as signer,
        c2pa.Builder(manifest, context) as builder,
    ):
        builder.sign(signer, "image/jpeg", source, signed)
    signed.seek(0)
    with c2pa.Reader("image/jpeg", signed, context=context) as reader:
        return str(json.loads(reader.json())["validation_state"])


def test_the_reference_validator_trusts_the_development_identity(tmp_path: Path) -> None:
    key, chain, root = development_chain(tmp_path)
    signer = LocalClaimSigner(key, chain)
    state = c2pa_sign(chain, lambda data: asyncio.run(signer.sign(data)), root)
    assert state == "Trusted"


def test_the_reference_validator_trusts_a_chain_with_an_intermediate() -> None:
    issued = issue_chain(now=NOW, with_intermediate=True)
    signer = LocalClaimSigner(issued.key_pem, issued.chain_pem)
    state = c2pa_sign(issued.chain_pem, lambda d: asyncio.run(signer.sign(d)), issued.root_pem)
    assert state == "Trusted"


@pytest.mark.parametrize(
    "keywords",
    [pytest.param(kw, id=case) for case, kw, _problem, refused in BROKEN_PROFILES if refused],
)
def test_the_reference_validator_refuses_the_profiles_refused_here(
    keywords: dict[str, Any],
) -> None:
    """Each leaf refused above is refused by c2pa-rs too (it signs with the key directly,
    past Fluxgate's checks). Stricter here: a key other than P-256 (claims are ES256)."""
    import c2pa

    issued = issue_chain(now=NOW, **keywords)
    with pytest.raises(c2pa.C2paError, match="certificate"):
        c2pa_sign(issued.chain_pem, signing_directly(issued), issued.root_pem)
    control = issue_chain(now=NOW)  # signed the same way, with the profile: accepted
    assert c2pa_sign(control.chain_pem, signing_directly(control), control.root_pem) == "Trusted"


def signing_directly(issued: IssuedChain) -> Callable[[bytes], bytes]:
    """ES256 with the chain's key and ``cryptography``, no check of the chain made."""
    key = issued.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign
