"""RFC 3161 time-stamps for C2PA claim signatures (``sigTst2``): the request, the checks on
the answer, the header value, and the local runtime's transport.

The time-stamp authority is a double (``tests/support/tsa.py``) whose tokens are written
independently of the code under test and are checked here to be what OpenSSL and the
reference validator (c2pa-rs, through ``c2pa-python``) accept. What is time-stamped is
checked against c2pa-rs itself: it signs through the double, and the bytes it had stamped
are the ones :func:`countersign_data` builds; a token :func:`countersign` fetched, put into
its signature, is one it validates and trusts, also once the signing certificate expired.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import c2pa  # type: ignore[import-untyped]
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from fluxgate.local.timestamp_http import HttpxTimestamper
from fluxgate.provenance import cbor, jumbf
from fluxgate.provenance.timestamp import (
    SIG_TST2,
    TimestampError,
    TimestampRequest,
    countersign,
    countersign_data,
    parse_response,
    timestamp_request,
    tsa_host,
    tst_container,
)

from ..support.c2pa_chain import (
    C2PA_CLAIM_SIGNING,
    EMAIL_PROTECTION,
    SERVER_AUTH,
    TIME_STAMPING,
    IssuedChain,
    issue_chain,
)
from ..support.image_files import image_bytes
from ..support.tsa import Behaviour, TimestampAuthority, read_request, response

pytestmark = pytest.mark.anyio

NOW = dt.datetime(2026, 12, 7, 12, 0, 0, tzinfo=dt.UTC)
NONCE = 0x1F2E3D4C5B6A7988
PROTECTED = cbor.encode({1: -7, 33: b"\x30\x03\x02\x01\x01"})  # ES256, a stand-in x5chain
SIGNATURE = bytes(range(64))
OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.fixture(scope="module")
def tsa() -> Iterator[TimestampAuthority]:
    with TimestampAuthority(clock=lambda: NOW) as running:
        yield running


@pytest.fixture(autouse=True)
def behaving(tsa: TimestampAuthority) -> Iterator[None]:
    yield
    tsa.behaviour = "grant"
    tsa.requests.clear()


class Direct:
    """A Timestamper that hands the request to the double without HTTP."""

    def __init__(self, tsa: TimestampAuthority) -> None:
        self.tsa = tsa

    async def stamp(self, request_der: bytes) -> bytes:
        return self.tsa.respond(request_der)


def openssl(*args: str) -> str:
    assert OPENSSL is not None
    done = subprocess.run([OPENSSL, *args], capture_output=True, check=False, timeout=30)
    return (done.stdout + done.stderr).decode(errors="replace")


# -- What is time-stamped -------------------------------------------------------------------


def test_sig_tst2_stamps_the_countersignature_structure_over_the_signature() -> None:
    """["CounterSignature", protected, h'', bstr(signature)]: the payload is the signature
    as a CBOR byte string, itself in a byte string (RFC 9052 section 4.4's payload field)."""
    data = countersign_data(b"\xa1\x01\x26", b"\x01" * 64)
    expected = (
        "84"  # an array of four
        + "70"
        + b"CounterSignature".hex()
        + "43a10126"  # the protected header bytes as they are carried
        + "40"  # no external AAD
        + "5842"
        + "5840"
        + "01" * 64  # bstr(bstr(signature))
    )
    assert data.hex() == expected


def test_the_claim_is_not_part_of_what_is_stamped() -> None:
    """The signature covers the claim; the stamp covers the signature and its header."""
    assert countersign_data(PROTECTED, SIGNATURE) != countersign_data(PROTECTED, SIGNATURE[::-1])
    assert countersign_data(PROTECTED, SIGNATURE) != countersign_data(b"\xa0", SIGNATURE)


# -- The request ------------------------------------------------------------------------------


def test_the_request_is_version_1_sha256_the_nonce_and_cert_req() -> None:
    request = timestamp_request(b"", 1)
    empty_sha256 = hashlib.sha256(b"").hexdigest()
    assert (
        request.der.hex()
        == (
            "303a"  # TimeStampReq
            "020101"  # version 1
            "302f" + "300b0609608648016503040201" + "0420" + empty_sha256 + "020101"  # nonce 1
            "0101ff"  # certReq TRUE
        )
    )
    assert (request.imprint.hex(), request.nonce) == (empty_sha256, 1)


@pytest.mark.parametrize(
    ("nonce", "encoded"),
    [
        (0x7F, "02017f"),
        (0x80, "02020080"),
        (0xFFFF, "020300ffff"),
        (2**127, "0211" + "0080" + "00" * 15),
    ],
)
def test_a_nonce_is_a_positive_der_integer(nonce: int, encoded: str) -> None:
    request = timestamp_request(b"m", nonce)
    assert request.der.hex().endswith(encoded + "0101ff")
    assert read_request(request.der).nonce == nonce


@pytest.mark.parametrize("nonce", [0, -1, 2**128, True])
def test_a_nonce_that_is_not_a_positive_128_bit_integer_is_refused(nonce: int) -> None:
    with pytest.raises(ValueError, match="nonce"):
        timestamp_request(b"m", nonce)


@needs_openssl
def test_openssl_reads_the_request(tmp_path: Path) -> None:
    message = b"the countersignature structure"
    path = tmp_path / "request.tsq"
    path.write_bytes(timestamp_request(message, 0x0123456789ABCDEF).der)
    text = openssl("ts", "-query", "-in", str(path), "-text")
    assert "Version: 1" in text
    assert "Hash Algorithm: sha256" in text
    assert "Nonce: 0x0123456789ABCDEF" in text
    assert "Certificate required: yes" in text
    assert "Policy OID: unspecified" in text
    shown = "".join(re.findall(r"- ((?:[0-9a-f]{2}[ -]){15}[0-9a-f]{2})", text))
    assert shown.replace(" ", "").replace("-", "") == hashlib.sha256(message).hexdigest()


# -- The double is a reference ------------------------------------------------------------------


@needs_openssl
@pytest.mark.parametrize("key", ["P-256", "RSA"])
def test_openssl_verifies_the_doubles_tokens(key: str, tmp_path: Path) -> None:
    """A stamp of the double is an RFC 3161 token OpenSSL verifies against the double's root,
    its ESS signingCertificateV2 attribute included; another message does not verify."""
    with TimestampAuthority(key="RSA" if key == "RSA" else "P-256") as authority:
        request = timestamp_request(b"stamped bytes", NONCE)
        (tmp_path / "reply.tsr").write_bytes(authority.respond(request.der))
        (tmp_path / "request.tsq").write_bytes(request.der)
        (tmp_path / "root.pem").write_text(authority.root_pem)
        (tmp_path / "data").write_bytes(b"stamped bytes")
        (tmp_path / "other").write_bytes(b"other bytes")
    verify = ("ts", "-verify", "-in", str(tmp_path / "reply.tsr"), "-CAfile")
    root = str(tmp_path / "root.pem")
    assert "Verification: OK" in openssl(*verify, root, "-queryfile", str(tmp_path / "request.tsq"))
    assert "Verification: OK" in openssl(*verify, root, "-data", str(tmp_path / "data"))
    assert "message imprint mismatch" in openssl(*verify, root, "-data", str(tmp_path / "other"))
    shown = openssl("ts", "-reply", "-in", str(tmp_path / "reply.tsr"), "-text")
    assert "Status: Granted." in shown and f"Nonce: 0x{NONCE:016X}" in shown


# -- The response -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["P-256", "RSA"])
def test_a_granted_response_gives_the_token_as_the_tsa_sent_it(key: str) -> None:
    stamped_at = NOW.replace(microsecond=250000)
    authority = TimestampAuthority(key="RSA" if key == "RSA" else "P-256", clock=lambda: stamped_at)
    request = timestamp_request(b"stamped bytes", NONCE)
    answer = authority.respond(request.der)
    token = parse_response(answer, request)
    assert token.gen_time == stamped_at  # a fraction of a second is kept
    assert (token.serial_number, token.policy) == (1, "1.3.6.1.4.1.55555.1.1")
    assert token.tsa_certificate == authority.certificate_der
    assert answer.endswith(token.der) and token.der.startswith(b"\x30")
    assert bytes.fromhex("06092a864886f70d010702") in token.der[:16]  # ContentInfo: signedData


def test_granted_with_modifications_is_granted(tsa: TimestampAuthority) -> None:
    tsa.behaviour = "grant-with-mods"
    request = timestamp_request(b"m", NONCE)
    assert parse_response(tsa.respond(request.der), request).gen_time == NOW


def refusal(tsa: TimestampAuthority, behaviour: Behaviour) -> str:
    tsa.behaviour = behaviour
    request = timestamp_request(b"m", NONCE)
    with pytest.raises(TimestampError) as refused:
        parse_response(tsa.respond(request.der), request)
    return str(refused.value)


def test_a_rejection_is_refused_with_what_the_tsa_said(tsa: TimestampAuthority) -> None:
    message = refusal(tsa, "reject")
    assert "did not grant" in message and "(rejection)" in message
    assert "badAlg" in message and "unsupported hash algorithm" in message


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [
        ("wrong-nonce", "answers another request"),
        ("no-nonce", "answers another request"),
        ("wrong-imprint", "another message"),
        ("no-certificate", "carries no certificate"),
        ("no-token", "sent no token"),
    ],
)
def test_an_answer_to_another_request_or_an_incomplete_one_is_refused(
    tsa: TimestampAuthority, behaviour: Behaviour, why: str
) -> None:
    assert why in refusal(tsa, behaviour)


def test_a_token_answering_an_earlier_request_is_refused(tsa: TimestampAuthority) -> None:
    """A replayed answer: the same message stamped before, under the earlier nonce."""
    earlier = timestamp_request(b"m", NONCE)
    replayed = tsa.respond(earlier.der)
    with pytest.raises(TimestampError, match="nonce differs"):
        parse_response(replayed, timestamp_request(b"m", NONCE + 1))


@pytest.mark.parametrize(
    "ekus",
    [
        pytest.param((TIME_STAMPING, SERVER_AUTH), id="timeStamping-and-serverAuth"),
        pytest.param((EMAIL_PROTECTION, C2PA_CLAIM_SIGNING), id="a-claim-signers"),
    ],
)
def test_a_tsa_certificate_without_timestamping_alone_is_refused(
    ekus: tuple[x509.ObjectIdentifier, ...],
) -> None:
    """c2pa-rs reports such a time-stamp as untrusted: better said when signing."""
    authority = TimestampAuthority(ekus=ekus, clock=lambda: NOW)
    request = timestamp_request(b"m", NONCE)
    with pytest.raises(TimestampError, match="timeStamping alone"):
        parse_response(authority.respond(request.der), request)


def test_a_stamp_outside_the_tsa_certificates_validity_is_refused() -> None:
    clock = [NOW]
    authority = TimestampAuthority(certificate_days=1, clock=lambda: clock[0])
    clock[0] = NOW + dt.timedelta(days=2)
    request = timestamp_request(b"m", NONCE)
    with pytest.raises(TimestampError, match="outside the TSA certificate's validity"):
        parse_response(authority.respond(request.der), request)


def test_a_token_whose_content_does_not_match_its_signed_digest_is_refused(
    tsa: TimestampAuthority,
) -> None:
    """A TSTInfo changed after signing (here its genTime): the messageDigest attribute tells."""
    request = timestamp_request(b"m", NONCE)
    answer = tsa.respond(request.der)
    gen_time = b"\x18\x0f" + f"{NOW:%Y%m%d%H%M%S}Z".encode()
    assert answer.count(gen_time) == 1
    forged = answer.replace(gen_time, gen_time.replace(b"00Z", b"01Z"))
    with pytest.raises(TimestampError, match="messageDigest does not match"):
        parse_response(forged, request)


def valid_answer() -> tuple[bytes, TimestampRequest]:
    authority = TimestampAuthority(clock=lambda: NOW)
    request = timestamp_request(b"m", NONCE)
    return authority.respond(request.der), request


VALID_ANSWER, VALID_REQUEST = valid_answer()


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=300),
        st.lists(  # a real answer with bytes changed
            st.tuples(st.integers(0, len(VALID_ANSWER) - 1), st.integers(0, 255)),
            min_size=1,
            max_size=4,
        ).map(lambda edits: _edited(VALID_ANSWER, edits)),
        st.integers(0, len(VALID_ANSWER) - 1).map(lambda end: VALID_ANSWER[:end]),
    )
)
def test_any_bytes_are_a_token_or_a_timestamp_error(data: bytes) -> None:
    try:
        parse_response(data, VALID_REQUEST)
    except TimestampError as refused:
        if len(data) >= 8:  # the message never quotes the bytes it was given
            assert data[:8].hex() not in str(refused)


def _edited(data: bytes, edits: list[tuple[int, int]]) -> bytes:
    changed = bytearray(data)
    for at, value in edits:
        changed[at] = value
    return bytes(changed)


# -- The header ---------------------------------------------------------------------------------


async def test_countersign_stamps_the_countersignature_structure(
    tsa: TimestampAuthority,
) -> None:
    token = await countersign(Direct(tsa), PROTECTED, SIGNATURE, nonce=NONCE)
    stamped = hashlib.sha256(countersign_data(PROTECTED, SIGNATURE)).digest()
    request = TimestampRequest(b"", stamped, NONCE)
    assert parse_response(response(status=0, token=token.der), request) == token
    assert token.gen_time == NOW


def test_the_sig_tst2_value_is_a_tst_container_holding_the_token_alone() -> None:
    """``{"tstTokens": [{"val": token}]}``: the TimeStampToken, not the whole response."""
    header = cbor.encode({SIG_TST2: tst_container(b"\x30\x00")})
    assert header.hex() == (
        "a1"
        + "67"
        + b"sigTst2".hex()
        + "a1"
        + "69"
        + b"tstTokens".hex()
        + "81"
        + "a1"
        + "63"
        + b"val".hex()
        + "42"
        + "3000"
    )


# -- The local transport ------------------------------------------------------------------------


async def test_the_local_adapter_posts_the_request_and_returns_the_reply(
    tsa: TimestampAuthority,
) -> None:
    request = timestamp_request(b"m", NONCE)
    answer = await HttpxTimestamper(tsa.url).stamp(request.der)
    assert parse_response(answer, request).gen_time == NOW
    body, headers = tsa.requests[-1]
    assert body == request.der
    assert headers["content-type"] == "application/timestamp-query"
    assert headers["accept"] == "application/timestamp-reply"


async def test_countersign_through_the_local_adapter(tsa: TimestampAuthority) -> None:
    token = await countersign(HttpxTimestamper(tsa.url), PROTECTED, SIGNATURE, nonce=NONCE)
    asked = read_request(tsa.requests[-1][0])
    assert asked.imprint == hashlib.sha256(countersign_data(PROTECTED, SIGNATURE)).digest()
    assert (asked.nonce, asked.cert_req) == (NONCE, True)
    assert token.gen_time == NOW and token.tsa_certificate == tsa.certificate_der


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [
        ("http-500", "answered HTTP 500"),
        ("html", "something other than a time-stamp reply"),
        ("oversized", "over the size limit"),
        ("oversized-unsized", "over the size limit"),
    ],
)
async def test_the_local_adapter_refuses_what_is_not_a_reply(
    tsa: TimestampAuthority, behaviour: Behaviour, why: str
) -> None:
    """The error names the host, never the URL's path or query (which may hold a key)."""
    tsa.behaviour = behaviour
    stamper = HttpxTimestamper(f"{tsa.url}?access_key=s3cr3t-key")
    with pytest.raises(TimestampError) as refused:
        await stamper.stamp(timestamp_request(b"m", NONCE).der)
    message = str(refused.value)
    assert why in message and "the time-stamp authority at 127.0.0.1" in message
    assert "s3cr3t" not in message and "/tsa" not in message


async def test_garbage_from_the_tsa_is_a_timestamp_error(tsa: TimestampAuthority) -> None:
    tsa.behaviour = "garbage"
    with pytest.raises(TimestampError, match="not valid"):
        await countersign(HttpxTimestamper(tsa.url), PROTECTED, SIGNATURE, nonce=NONCE)


async def test_a_tsa_that_does_not_answer_is_given_up_on_in_time(tsa: TimestampAuthority) -> None:
    tsa.behaviour = "stall"
    started = time.monotonic()
    with pytest.raises(TimestampError, match="did not answer in time"):
        await HttpxTimestamper(tsa.url, timeout=0.5).stamp(timestamp_request(b"m", NONCE).der)
    assert time.monotonic() - started < 5


async def test_a_tsa_that_cannot_be_reached_is_a_timestamp_error() -> None:
    closed = TimestampAuthority().start()
    url = closed.url
    closed.stop()  # nothing listens on its port any more
    with pytest.raises(TimestampError, match=r"127\.0\.0\.1 could not be reached"):
        await HttpxTimestamper(url).stamp(timestamp_request(b"m", NONCE).der)


@pytest.mark.parametrize("url", ["ftp://tsa.example/", "https:///path", "tsa.example", ""])
def test_a_tsa_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        HttpxTimestamper(url)
    assert tsa_host("https://user:pw@tsa.example:8443/x?key=1") == "tsa.example"


# -- What the reference validator makes of it ------------------------------------------------------

DIGITAL_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def es256(issued: IssuedChain) -> Callable[[bytes], bytes]:
    key = issued.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(data: bytes) -> bytes:
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    return sign


def c2pa_signed(issued: IssuedChain, tsa_url: str | None) -> bytes:
    """A JPEG signed by c2pa-rs (ES256 with the chain's key), time-stamped at ``tsa_url``."""
    manifest = {
        "claim_generator_info": [{"name": "fluxgate-tests", "version": "0"}],
        "format": "image/jpeg",
        "title": "time-stamp",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [{"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE}]
                },
            }
        ],
    }
    source, signed = io.BytesIO(image_bytes("JPEG", 16, 16)), io.BytesIO()
    context = c2pa.Context.from_dict({"trust": {"user_anchors": issued.root_pem}})
    with (
        c2pa.Signer.from_callback(
            es256(issued), c2pa.C2paSigningAlg.ES256, issued.chain_pem, tsa_url
        ) as signer,
        c2pa.Builder(manifest, context) as builder,
    ):
        builder.sign(signer, "image/jpeg", source, signed)
    return signed.getvalue()


def validation(jpeg: bytes, anchors_pem: str) -> tuple[str, set[str], set[str], set[str]]:
    """(state, success codes, informational codes, failure codes) trusting ``anchors_pem``."""
    context = c2pa.Context.from_dict(
        {
            "trust": {"user_anchors": anchors_pem},
            "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False},
        }
    )
    with c2pa.Reader("image/jpeg", io.BytesIO(jpeg), context=context) as reader:
        store: dict[str, Any] = json.loads(reader.json())
    codes = store["validation_results"]["activeManifest"]
    found = (
        {entry["code"] for entry in codes.get(kind, [])}
        for kind in ("success", "informational", "failure")
    )
    success, informational, failure = found
    return store["validation_state"], success, informational, failure


def signature_of(jpeg: bytes) -> tuple[bytes, list[Any]]:
    """The active manifest's COSE_Sign1 as the file holds it, and its four fields."""
    start = jpeg.index(b"jumb") - 4
    size = int.from_bytes(jpeg[start : start + 4], "big")
    store = jumbf.parse(jpeg[start : start + size])
    box = store.superboxes()[-1].find("c2pa.signature")
    assert box is not None
    cose = box.content(b"cbor")
    assert cose is not None and jpeg.count(cose) == 1
    tagged = cbor.decode(cose)
    assert isinstance(tagged, cbor.Tag) and isinstance(tagged.value, list)
    return cose, tagged.value


def with_sig_tst2(jpeg: bytes, container: cbor.Encodable) -> bytes:
    """``jpeg`` with its signature's ``sigTst2`` replaced by ``container``, the padding
    adjusted so that the signature keeps its size (nothing else in the file moves)."""
    cose, (protected, _unprotected, payload, signature) = signature_of(jpeg)
    for padding in range(len(cose)):
        header: dict[str, cbor.Encodable] = {SIG_TST2: container, "pad": bytes(padding)}
        replaced = cbor.encode(cbor.Tag(18, [protected, header, payload, signature]))
        if len(replaced) == len(cose):
            return jpeg.replace(cose, replaced)
    raise AssertionError("no padding makes the signature the same size")


@pytest.mark.parametrize("key", ["P-256", "RSA"])
def test_c2pa_rs_stamps_the_countersignature_structure_and_trusts_the_doubles_tokens(
    key: str,
) -> None:
    """c2pa-rs, signing with the double as its TSA, has it stamp exactly
    :func:`countersign_data` of the signature it made, stores the token alone under
    ``sigTst2``, and reads it back as validated and trusted (the TSA's root among the
    anchors)."""
    issued = issue_chain()
    with TimestampAuthority(key="RSA" if key == "RSA" else "P-256") as authority:
        jpeg = c2pa_signed(issued, authority.url)
        (asked, headers), *more = authority.requests
    assert not more and headers["content-type"] == "application/timestamp-query"
    _cose, (protected, unprotected, _payload, signature) = signature_of(jpeg)
    stamped = hashlib.sha256(countersign_data(protected, signature)).digest()
    assert read_request(asked).imprint == stamped
    token = unprotected[SIG_TST2]["tstTokens"][0]["val"]
    checked = parse_response(
        response(status=0, token=token),
        TimestampRequest(b"", stamped, read_request(asked).nonce or 0),
    )
    assert checked.tsa_certificate == authority.certificate_der
    state, success, _informational, failure = validation(jpeg, issued.root_pem + authority.root_pem)
    assert state == "Trusted" and not failure
    assert {"timeStamp.validated", "timeStamp.trusted"} <= success


async def test_c2pa_rs_trusts_a_token_countersign_fetched_once_its_root_is_an_anchor() -> None:
    """The token :func:`countersign` fetched, as ``sigTst2``, is one c2pa-rs validates; it
    trusts it only when the TSA's root is among its trust anchors (the same anchors as for
    claim signers): otherwise the time-stamp is untrusted, and the signature checked now."""
    issued = issue_chain()
    with TimestampAuthority() as authority:  # on the real clock, as the validator is
        jpeg = c2pa_signed(issued, authority.url)  # c2pa-rs's own token: replaced below
        _cose, (protected, unprotected, _payload, signature) = signature_of(jpeg)
        token = await countersign(
            HttpxTimestamper(authority.url), protected, signature, nonce=NONCE
        )
    ours = with_sig_tst2(jpeg, tst_container(token.der))
    assert token.der != unprotected[SIG_TST2]["tstTokens"][0]["val"]
    assert signature_of(ours)[1][1][SIG_TST2] == {"tstTokens": [{"val": token.der}]}
    anchors = issued.root_pem + authority.root_pem
    state, success, _informational, failure = validation(ours, anchors)
    assert state == "Trusted" and not failure
    assert {"timeStamp.validated", "timeStamp.trusted"} <= success
    state, success, informational, failure = validation(ours, issued.root_pem)
    assert state == "Trusted" and "timeStamp.untrusted" in informational
    assert "timeStamp.trusted" not in success


async def test_a_time_stamped_signature_outlives_its_certificate() -> None:
    """Why time-stamps: once the signing certificate expired, c2pa-rs reports a signature
    without one as signed by an expired credential, and one with a trusted time-stamp from
    when the certificate was valid as trusted."""
    now = dt.datetime.now(dt.UTC)
    expiry = (now + dt.timedelta(seconds=4)).replace(microsecond=0)  # after both signings
    issued = issue_chain(not_after=expiry)
    bare = c2pa_signed(issued, None)
    with TimestampAuthority() as authority:
        stamped = c2pa_signed(issued, authority.url)
        _cose, (protected, _u, _p, signature) = signature_of(stamped)
        token = await countersign(
            HttpxTimestamper(authority.url), protected, signature, nonce=NONCE
        )
        ours = with_sig_tst2(stamped, tst_container(token.der))
        anchors = issued.root_pem + authority.root_pem
    await asyncio.sleep(max(0.0, (expiry - dt.datetime.now(dt.UTC)).total_seconds()) + 1.5)
    state, _success, _informational, failure = validation(bare, anchors)
    assert state == "Invalid" and "signingCredential.expired" in failure
    state, success, _informational, failure = validation(ours, anchors)
    assert state == "Trusted" and not failure and "timeStamp.trusted" in success
