"""RFC 3161 time-stamps for C2PA claim signatures: the COSE header ``sigTst2``.

Why: without a trusted time-stamp, a C2PA validator checks the signing certificate against
the time it validates at, so every image's Content Credentials turn invalid the day the
certificate expires. A time-stamp token from a time-stamp authority (TSA) proves when the
claim was signed, and the certificate is then checked at that time. The operator names a
TSA (setting ``C2PA_TIMESTAMP_URL``); this module makes the request, checks the answer and
builds the header value. The transport is the runtime's (:class:`Timestamper`: httpx
locally, ``fetch`` on Workers), so this stays pure Python for Pyodide.

What the reference validator expects (c2pa-rs, read at its August 2026 source; paths are
in https://github.com/contentauth/c2pa-rs):

- Where: the COSE_Sign1's *unprotected* header, label ``"sigTst2"`` for a C2PA 2.x claim
  (``"sigTst"``, v1, is deprecated and used for v1 claims only):
  ``sdk/src/crypto/cose/sigtst.rs`` (``get_cose_tst_info``), ``sdk/src/cose_sign.rs``
  (``claim.version() > 1`` picks ``V2_sigTst2_CTT``), ``time_stamp_storage.rs``.
- What: a ``tstContainer`` map, ``{"tstTokens": [{"val": <bstr>}]}`` (``TstContainer``,
  ``TstToken`` in ``sigtst.rs``). For ``sigTst2`` ``val`` is the DER ``TimeStampToken``
  (the CMS ``ContentInfo``) alone, taken out of the TSA's ``TimeStampResp``
  (``timestamptoken_from_timestamprsp``); for ``sigTst`` it was the whole response. Only one
  token is allowed: more is reported ``timeStamp.malformed``.
- Over which bytes (the message imprint): v2 is the "CTT" model of the COSE time-stamp
  draft, a countersignature of the finished signature. The TSA hashes the COSE
  ``Sig_structure`` (RFC 9052 section 4.4) with context ``"CounterSignature"``, the
  COSE_Sign1's protected header bytes *as serialized*, an empty external AAD, and as
  payload the CBOR encoding of the signature as a byte string:
  ``["CounterSignature", protected, h'', bstr(signature)]`` (``sign_v2_embedded`` in
  ``sdk/src/crypto/cose/sign.rs`` wraps ``sign1.signature`` in a CBOR bstr, then
  ``cose_countersign_data`` in ``sigtst.rs`` builds the structure with coset's
  ``sig_structure_data``, no ``sign_protected``; ``validate_cose_tst_info`` rebuilds it
  from the parsed ``COSE_Sign1``, so the protected bytes must be the ones carried). So
  sigTst2 needs the protected header and the signature, never the claim (which the
  signature already covers). v1 hashed ``["CounterSignature", protected, h'', claim]`` and
  was stamped before signing.
- Hash: the request's imprint is SHA-256 (``default_rfc3161_message`` in
  ``sdk/src/crypto/time_stamp/provider.rs``: version 1, no ``reqPolicy``, a random 64-bit
  nonce, ``certReq`` true, the algorithm identifier without parameters); the validator
  hashes with whatever the token's ``messageImprint`` names (SHA-1/256/384/512,
  ``sdk/src/crypto/time_stamp/verify.rs``). When c2pa-rs itself asks a TSA
  (``http_request.rs``) it requires HTTP 200 with ``Content-Type:
  application/timestamp-reply``, reads at most 1 MB, and refuses a nonce that differs.
- What ``verify_time_stamp`` (``verify.rs``) checks in the token: it is DER (bcder/rasn in
  DER mode); eContentType ``id-ct-TSTInfo``; the token carries certificates, every one a
  plain X.509 certificate, and the signer's is found among them (issuer and serial, or
  subject key identifier); a ``messageDigest`` signed attribute equal to the digest of the
  TSTInfo with the SignerInfo's digest algorithm; the CMS signature over the DER signed
  attributes with the certificate's key; ``genTime`` (or a signed ``signingTime``, which
  wins) within the TSA certificate's validity, give or take ``accuracy``; the imprint over
  the bytes above. It does *not* check the ESS ``signingCertificate``/``V2`` attribute,
  nor the nonce, nor the policy. With ``verify.verify_timestamp_trust`` (on by default,
  off only in c2pa-rs's own unit tests) the TSA certificate must also pass the end-entity
  profile (``sdk/src/crypto/cose/certificate_profile.rs``: v3, a C2PA signature algorithm,
  P-256/384/521 or RSA >= 2048, an authorityKeyIdentifier, keyUsage digitalSignature, not
  a CA, no critical extension it does not know, and an extendedKeyUsage of
  ``id-kp-timeStamping`` (1.3.6.1.5.5.7.3.8) *alone*: beside any other EKU it is refused)
  and chain to a trust anchor: the *same* anchors as claim signers
  (``CertificateTrustPolicy``: C2PA trust list, ``trust.trust_anchors`` /
  ``trust.user_anchors``), EKU list replaced by timeStamping. So c2pa-python reports a
  time-stamp as trusted only when the TSA's root is among its trust anchors (a test passes
  the TSA double's root with the signing root in ``trust.user_anchors``).
- Failing: a bad or untrusted time-stamp is not fatal (``sdk/src/cose_validator.rs``): it is
  logged (``timeStamp.mismatch``, ``.untrusted``, ``.malformed``, ``.outsideValidity``) and
  the signing certificate is checked against the current time instead, as with none.
  Success logs ``timeStamp.validated`` and ``timeStamp.trusted``.

What is checked here, before a token goes into a manifest: the status, the imprint and the
nonce (a TSA answering another request, or a replayed answer, is refused), and what would
otherwise only show up as a malformed or untrusted time-stamp in every validator: a DER
token with a TSTInfo, the messageDigest attribute, a certificate for the signer whose
extendedKeyUsage is timeStamping alone, and ``genTime`` within its validity. The CMS
signature and the path to a trust anchor are the validator's to check (there is no
pure-Python signature verification on Workers worth its cost, and no trust list here).
Every failure is a :class:`TimestampError` whose message quotes no input bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from urllib.parse import urlsplit

from . import cbor, der

__all__ = [
    "MAX_NONCE_BITS",
    "MAX_RESPONSE_BYTES",
    "REPLY_CONTENT_TYPE",
    "REPLY_CONTENT_TYPES",
    "REQUEST_CONTENT_TYPE",
    "SIG_TST2",
    "TimestampError",
    "TimestampRequest",
    "TimestampToken",
    "Timestamper",
    "countersign",
    "countersign_data",
    "parse_response",
    "timestamp_request",
    "tsa_host",
    "tst_container",
]

SIG_TST2 = "sigTst2"  # the unprotected header label (C2PA 2.x)
REQUEST_CONTENT_TYPE = "application/timestamp-query"  # RFC 3161 section 3.4
REPLY_CONTENT_TYPE = "application/timestamp-reply"
# What a reply may be labelled: some TSAs still send the RFC 3161 drafts' name.
REPLY_CONTENT_TYPES = frozenset({REPLY_CONTENT_TYPE, "application/timestamp-response"})
# A response is a few kilobytes (the token and the TSA's certificates); c2pa-rs reserves
# 10,000 bytes for the token in a signature box. Past this, the adapters stop reading.
MAX_RESPONSE_BYTES = 64 * 1024
MAX_NONCE_BITS = 128

SHA256 = "2.16.840.1.101.3.4.2.1"
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "1.3.14.3.2.26": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    SHA256: lambda data: hashlib.sha256(data).digest(),
    "2.16.840.1.101.3.4.2.2": lambda data: hashlib.sha384(data).digest(),
    "2.16.840.1.101.3.4.2.3": lambda data: hashlib.sha512(data).digest(),
}
SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"  # id-ct-TSTInfo
CONTENT_TYPE_ATTRIBUTE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST_ATTRIBUTE = "1.2.840.113549.1.9.4"
SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
EXTENDED_KEY_USAGE = "2.5.29.37"
TIME_STAMPING = "1.3.6.1.5.5.7.3.8"

_STATUS = {
    0: "granted",
    1: "grantedWithMods",
    2: "rejection",
    3: "waiting",
    4: "revocationWarning",
    5: "revocationNotification",
}
_FAILURES = {  # PKIFailureInfo's bits (RFC 3161 section 2.4.2)
    0: "badAlg",
    2: "badRequest",
    5: "badDataFormat",
    14: "timeNotAvailable",
    15: "unacceptedPolicy",
    16: "unacceptedExtension",
    17: "addInfoNotAvailable",
    25: "systemFailure",
}
_GENERALIZED_TIME = re.compile(r"(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(?:\.(\d{1,9}))?Z")
_STATUS_TEXT_LIMIT = 120


class TimestampError(Exception):
    """No usable time-stamp: the TSA could not be reached, refused, or answered with
    something this module does not accept. The message names the TSA's host at most, never
    the URL's path or query (which may hold an access key) and never response bytes."""


class Timestamper(Protocol):
    """The runtime's way to a TSA: POST an RFC 3161 request, get the response's bytes."""

    async def stamp(self, request_der: bytes) -> bytes:
        """The TSA's DER ``TimeStampResp`` to ``request_der`` (a ``TimeStampReq``).
        Raises :class:`TimestampError` when there is none (unreachable, timed out, an
        HTTP error status, a body over :data:`MAX_RESPONSE_BYTES`)."""
        ...


@dataclass(frozen=True)
class TimestampRequest:
    """A ``TimeStampReq`` and what its answer must match."""

    der: bytes
    imprint: bytes  # SHA-256 of the time-stamped bytes
    nonce: int


@dataclass(frozen=True)
class TimestampToken:
    """A checked ``TimeStampToken``: ``der`` goes into the manifest as it came."""

    der: bytes
    gen_time: datetime  # when the TSA says it stamped (UTC)
    serial_number: int
    policy: str
    tsa_certificate: bytes  # the signer's certificate, DER, as the token carries it


def tsa_host(url: str) -> str:
    """The part of a TSA URL that messages may name: its host. A URL may carry an access key
    in its path or query, and the messages are logged. Raises :class:`ValueError` for a URL
    that is not http(s) with a host (without quoting it)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("a time-stamp authority URL is http:// or https:// with a host")
    return parts.hostname


def countersign_data(protected: bytes, signature: bytes) -> bytes:
    """What a ``sigTst2`` time-stamp covers: the COSE countersignature ``Sig_structure``
    over a finished ``COSE_Sign1``, from its protected header (the serialized bytes it
    carries) and its signature (raw ``r || s`` for ES256)."""
    return cbor.encode(["CounterSignature", protected, b"", cbor.encode(signature)])


# -- the request --------------------------------------------------------------------------


def timestamp_request(message: bytes, nonce: int) -> TimestampRequest:
    """The DER ``TimeStampReq`` (RFC 3161 section 2.4.1) for ``message``: version 1, a
    SHA-256 imprint, ``nonce`` (from the caller, who has the randomness: none is drawn at
    import on Workers), no policy, ``certReq`` true (validators need the TSA's certificate
    in the token)."""
    if isinstance(nonce, bool) or not 0 < nonce < 1 << MAX_NONCE_BITS:
        raise ValueError(f"a nonce is a positive integer of at most {MAX_NONCE_BITS} bits")
    imprint = hashlib.sha256(message).digest()
    encoded = _sequence(
        _integer(1),
        _sequence(_sequence(_oid(SHA256)), _tlv(der.OCTET_STRING, imprint)),
        _integer(nonce),
        _tlv(der.BOOLEAN, b"\xff"),
    )
    return TimestampRequest(encoded, imprint, nonce)


def _tlv(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + body


def _sequence(*items: bytes) -> bytes:
    return _tlv(der.SEQUENCE, b"".join(items))


def _integer(value: int) -> bytes:
    return _tlv(der.INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(der.OID, bytes(body))


# -- the response -------------------------------------------------------------------------


def parse_response(response: bytes, request: TimestampRequest) -> TimestampToken:
    """The token of a granted ``TimeStampResp`` to ``request``, once checked (see the
    module's docstring). Anything else, from a refusal to bytes that are not DER at all, is
    a :class:`TimestampError`."""
    try:
        return _token(response, request)
    except der.DerError as exc:
        raise TimestampError(f"the time-stamp response is not valid: {exc}") from None


def _token(response: bytes, request: TimestampRequest) -> TimestampToken:
    parts = der.read_one(response, der.SEQUENCE, "TimeStampResp").children("TimeStampResp")
    if not parts or len(parts) > 2:
        raise der.DerError("TimeStampResp is not a status and a token")
    _check_status(parts[0])
    if len(parts) == 1:
        raise TimestampError("the time-stamp authority granted the request but sent no token")
    token = parts[1].expect(der.SEQUENCE, "TimeStampToken")
    signed_data = _signed_data(token)
    version, digests, encapsulated, *rest = _at_least(signed_data, 4, "SignedData")
    der.integer(version, "SignedData's version")
    digests.expect(der.SET, "SignedData's digestAlgorithms")
    tst_info = _encapsulated_tst_info(encapsulated)
    info = _tst_info(tst_info)
    if info.imprint_algorithm != SHA256 or info.imprint != request.imprint:
        raise TimestampError("the time-stamp token is for another message than the request's")
    if info.nonce != request.nonce:
        raise TimestampError("the time-stamp token answers another request (its nonce differs)")
    certificates = [
        _certificate(element)
        for element in _certificates(rest[:-1]).children("SignedData's certificates")
    ]
    signer_infos = rest[-1].expect(der.SET, "SignedData's signerInfos").children("signerInfos")
    if len(signer_infos) != 1:  # c2pa-rs takes any valid one; TSAs sign once
        raise TimestampError("the time-stamp token has not exactly one signer")
    signer = _signer(signer_infos[0], tst_info, certificates)
    stamped = info.gen_time.timestamp()
    if not signer.not_before <= stamped <= signer.not_after:
        raise TimestampError("the time-stamp is outside the TSA certificate's validity")
    return TimestampToken(token.encoded, info.gen_time, info.serial_number, info.policy, signer.der)


def _at_least(element: der.Element, count: int, what: str) -> list[der.Element]:
    items = element.children(what)
    if len(items) < count:
        raise der.DerError(f"{what} has too few fields")
    return items


def _check_status(element: der.Element) -> None:
    status_info = element.expect(der.SEQUENCE, "PKIStatusInfo").children("PKIStatusInfo")
    if not status_info:
        raise der.DerError("PKIStatusInfo is empty")
    status = der.integer(status_info[0], "PKIStatus")
    if status in (0, 1):
        return
    details: list[str] = []
    for item in status_info[1:]:
        if item.tag == der.BIT_STRING:
            bits, _unused = der.bit_string(item, "PKIFailureInfo")
            details += [
                _FAILURES.get(bit, f"failure bit {bit}")
                for bit in range(len(bits) * 8)
                if bits[bit // 8] & (0x80 >> (bit % 8))
            ]
        elif item.tag == der.SEQUENCE:
            details += [_status_text(text) for text in item.children("PKIFreeText")]
    name = _STATUS.get(status, f"status {status}")
    said = f": {'; '.join(details)}" if details else ""
    raise TimestampError(f"the time-stamp authority did not grant the request ({name}){said}")


def _status_text(element: der.Element) -> str:
    """A TSA's own words (UTF8String), printable and cut short: they end up in a log."""
    text = element.expect(0x0C, "PKIFreeText").body.decode("utf-8", "replace")
    printable = "".join(char if char.isprintable() else "?" for char in text)
    return printable[:_STATUS_TEXT_LIMIT]


def _signed_data(token: der.Element) -> der.Element:
    content_type, content = _pair(token, "TimeStampToken")
    if der.object_identifier(content_type, "TimeStampToken's contentType") != SIGNED_DATA:
        raise der.DerError("TimeStampToken is not CMS SignedData")
    explicit = content.expect(der.context(0, constructed=True), "TimeStampToken's content")
    return der.read_one(explicit.body, der.SEQUENCE, "SignedData")


def _encapsulated_tst_info(element: der.Element) -> bytes:
    parts = element.expect(der.SEQUENCE, "encapContentInfo").children("encapContentInfo")
    if len(parts) != 2:
        raise der.DerError("encapContentInfo carries no content")
    if der.object_identifier(parts[0], "eContentType") != TST_INFO:
        raise TimestampError("the time-stamp token does not hold a TSTInfo")
    explicit = parts[1].expect(der.context(0, constructed=True), "eContent")
    return der.read_one(explicit.body, der.OCTET_STRING, "eContent").body


def _certificates(optional: Sequence[der.Element]) -> der.Element:
    """SignedData's ``certificates [0]`` (before any ``crls [1]``): validators need them."""
    for element in optional:
        if element.tag == der.context(0, constructed=True):
            return element
        if element.tag != der.context(1, constructed=True):
            raise der.DerError("SignedData has an unexpected field")
    raise TimestampError("the time-stamp token carries no certificate (certReq was asked)")


@dataclass(frozen=True)
class _Certificate:
    der: bytes
    issuer: bytes
    serial_number: int
    subject_key_identifier: bytes | None
    extended_key_usage: frozenset[str] | None
    not_before: float
    not_after: float


def _certificate(element: der.Element) -> _Certificate:
    """The parts of a certificate in the token the signer is found and checked by."""
    parts = element.expect(der.SEQUENCE, "a token's certificate").children("a certificate")
    if len(parts) != 3:
        raise der.DerError("a token's certificate is not an X.509 certificate")
    tbs = parts[0].expect(der.SEQUENCE, "tbsCertificate").children("tbsCertificate")
    if tbs and tbs[0].tag == der.context(0, constructed=True):
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise der.DerError("tbsCertificate has too few fields")
    serial, _algorithm, issuer, validity, _subject, _spki, *optional = tbs
    not_before, not_after = _pair(validity, "validity")
    ski: bytes | None = None
    eku: frozenset[str] | None = None
    explicit = next((e for e in optional if e.tag == der.context(3, constructed=True)), None)
    listed = der.read_extensions(explicit, "extensions") if explicit is not None else []
    for oid, _critical, value in listed:
        if oid == SUBJECT_KEY_IDENTIFIER:
            ski = der.read_one(value, der.OCTET_STRING, "subjectKeyIdentifier").body
        elif oid == EXTENDED_KEY_USAGE:
            eku = frozenset(der.key_purposes(value))
    return _Certificate(
        der=element.encoded,
        issuer=issuer.expect(der.SEQUENCE, "issuer").encoded,
        serial_number=der.integer(serial, "serialNumber"),
        subject_key_identifier=ski,
        extended_key_usage=eku,
        not_before=der.time_value(not_before, "notBefore"),
        not_after=der.time_value(not_after, "notAfter"),
    )


def _pair(element: der.Element, what: str) -> tuple[der.Element, der.Element]:
    items = element.expect(der.SEQUENCE, what).children(what)
    if len(items) != 2:
        raise der.DerError(f"{what} is not a pair")
    return items[0], items[1]


def _signer(
    element: der.Element, tst_info: bytes, certificates: Sequence[_Certificate]
) -> _Certificate:
    """The SignerInfo's certificate, once its signed attributes are found consistent."""
    fields = _at_least(element.expect(der.SEQUENCE, "SignerInfo"), 5, "SignerInfo")
    _version, sid, digest_algorithm, attributes, *_rest = fields
    digest_oid, _ = der.algorithm_identifier(digest_algorithm, "the signer's digestAlgorithm")
    digest = _DIGESTS.get(digest_oid)
    if digest is None:
        raise TimestampError("the time-stamp token is signed with an unknown digest")
    if attributes.tag != der.context(0, constructed=True):
        raise TimestampError("the time-stamp token has no signed attributes")
    values = _attributes(attributes)
    content_type = values.get(CONTENT_TYPE_ATTRIBUTE)
    if content_type is None or der.object_identifier(content_type, "contentType") != TST_INFO:
        raise TimestampError("the time-stamp token's contentType attribute is not TSTInfo")
    message_digest = values.get(MESSAGE_DIGEST_ATTRIBUTE)
    if message_digest is None:
        raise TimestampError("the time-stamp token has no messageDigest attribute")
    if message_digest.expect(der.OCTET_STRING, "messageDigest").body != digest(tst_info):
        raise TimestampError("the time-stamp token's messageDigest does not match its TSTInfo")
    certificate = next((c for c in certificates if _identifies(sid, c)), None)
    if certificate is None:
        raise TimestampError("the time-stamp token does not carry its signer's certificate")
    if certificate.extended_key_usage != frozenset({TIME_STAMPING}):
        raise TimestampError(
            "the TSA's certificate does not have the extended key usage timeStamping alone"
        )
    return certificate


def _attributes(element: der.Element) -> dict[str, der.Element]:
    """Each signed attribute's single value, by type (one value each, as CMS requires of
    contentType and messageDigest)."""
    found: dict[str, der.Element] = {}
    for attribute in element.children("signedAttrs"):
        kind, values = _pair(attribute, "an attribute")
        name = der.object_identifier(kind, "an attribute's type")
        items = values.expect(der.SET, "an attribute's values").children("an attribute's values")
        if name in found or len(items) != 1:
            raise der.DerError("a signed attribute is repeated or has not one value")
        found[name] = items[0]
    return found


def _identifies(sid: der.Element, certificate: _Certificate) -> bool:
    if sid.tag == der.context(0, constructed=False):  # subjectKeyIdentifier
        return certificate.subject_key_identifier == sid.body
    issuer, serial = _pair(sid, "issuerAndSerialNumber")
    return (
        issuer.encoded == certificate.issuer
        and der.integer(serial, "the signer's serialNumber") == certificate.serial_number
    )


@dataclass(frozen=True)
class _TstInfo:
    policy: str
    imprint_algorithm: str
    imprint: bytes
    serial_number: int
    gen_time: datetime
    nonce: int | None


def _tst_info(data: bytes) -> _TstInfo:
    fields = _at_least(der.read_one(data, der.SEQUENCE, "TSTInfo"), 5, "TSTInfo")
    version, policy, imprint, serial, gen_time, *optional = fields
    if der.integer(version, "TSTInfo's version") != 1:
        raise der.DerError("TSTInfo's version is not 1")
    algorithm, digest = _pair(imprint, "messageImprint")
    nonce = None
    # accuracy, ordering, nonce, tsa [0], extensions [1]: each at most once, in this order.
    order = [
        der.SEQUENCE,
        der.BOOLEAN,
        der.INTEGER,
        der.context(0, constructed=True),
        der.context(1, constructed=True),
    ]
    for element in optional:
        if element.tag not in order:
            raise der.DerError("TSTInfo has an unexpected field")
        order = order[order.index(element.tag) + 1 :]
        if element.tag == der.INTEGER:
            nonce = der.integer(element, "TSTInfo's nonce")
    return _TstInfo(
        policy=der.object_identifier(policy, "TSTInfo's policy"),
        imprint_algorithm=der.algorithm_identifier(algorithm, "messageImprint's hashAlgorithm")[0],
        imprint=digest.expect(der.OCTET_STRING, "messageImprint's hashedMessage").body,
        serial_number=der.integer(serial, "TSTInfo's serialNumber"),
        gen_time=_gen_time(gen_time),
        nonce=nonce,
    )


def _gen_time(element: der.Element) -> datetime:
    """``genTime``: GeneralizedTime in UTC, possibly with a fraction of a second (RFC 3161
    allows any precision; microseconds are kept)."""
    body = element.expect(der.GENERALIZED_TIME, "genTime").body.decode("ascii", "replace")
    match = _GENERALIZED_TIME.fullmatch(body)
    if match is None:
        raise der.DerError("genTime is not a GeneralizedTime in UTC")
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction = match.group(7) or ""
    try:
        return datetime(
            year, month, day, hour, minute, second, int(fraction[:6].ljust(6, "0")), tzinfo=UTC
        )
    except ValueError:
        raise der.DerError("genTime is not a calendar date") from None


# -- the header ---------------------------------------------------------------------------


def tst_container(token_der: bytes) -> dict[str, cbor.Encodable]:
    """The ``sigTst2`` header's value: a ``tstContainer`` holding the one token."""
    return {"tstTokens": [{"val": token_der}]}


async def countersign(
    timestamper: Timestamper, protected: bytes, signature: bytes, *, nonce: int
) -> TimestampToken:
    """Time-stamp a finished COSE_Sign1 signature (its protected header bytes and its
    signature), with ``nonce`` a fresh random positive integer (``secrets.randbits(64) |
    1``). The token's place is its unprotected header:
    ``{SIG_TST2: tst_container(token.der)}``. Raises :class:`TimestampError`."""
    request = timestamp_request(countersign_data(protected, signature), nonce)
    return parse_response(await timestamper.stamp(request.der), request)
