"""The operator's C2PA signing identity, read and checked in pure Python on both runtimes.

A manifest signed with a certificate a validator refuses is worse than none: every image
would carry Content Credentials reported as invalid, and nothing would say so when the
image is made. So the chain is checked once, when the signer is made, against the profile
C2PA requires of a claim signer (C2PA 2.x, "X.509 Certificates"; the checks the reference
validator, c2pa-rs, makes on the signing certificate), and a broken one is refused with
a message that says what is wrong. Also what Fluxgate needs on top: the leaf key is EC
P-256, because claims are signed with ES256 (WebCrypto's ECDSA on Workers).

The chain (``C2PA_CERTIFICATE_CHAIN``) is PEM, leaf first, then its intermediates; a
trailing self-signed root is accepted and kept apart (:attr:`SigningChain.anchor`): C2PA's
``x5chain`` never carries the trust anchor, which the validator must already hold. The key
(``C2PA_SIGNING_KEY``) is PKCS#8 PEM, what WebCrypto's ``importKey("pkcs8")`` takes. No
message here ever quotes the key or any other input bytes.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import pairwise

from .der import (
    BIT_STRING,
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    DerError,
    Element,
    algorithm_identifier,
    bit_string,
    boolean,
    context,
    integer,
    key_purposes,
    object_identifier,
    read_extensions,
    read_one,
    time_value,
)

__all__ = [
    "MAX_CHAIN_CERTIFICATES",
    "CertificateProfileError",
    "SigningChain",
    "SigningIdentityError",
    "private_key_der",
    "private_key_public_point",
]

MAX_CHAIN_CERTIFICATES = 8  # leaf, intermediates and root; real chains have 2 to 4

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
P256 = "1.2.840.10045.3.1.7"
_KEY_TYPES = {
    "1.2.840.113549.1.1.1": "RSA",
    "1.2.840.113549.1.1.10": "RSA-PSS",
    "1.3.101.112": "Ed25519",
    "1.3.101.113": "Ed448",
}
_CURVES = {P256: "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521"}

# What a certificate may be signed with (by its issuer): the algorithms C2PA lists.
_SIGNATURE_ALGORITHMS = frozenset(
    {
        "1.2.840.113549.1.1.11",  # sha256WithRSAEncryption
        "1.2.840.113549.1.1.12",  # sha384WithRSAEncryption
        "1.2.840.113549.1.1.13",  # sha512WithRSAEncryption
        "1.2.840.113549.1.1.10",  # RSASSA-PSS
        "1.2.840.10045.4.3.2",  # ecdsa-with-SHA256
        "1.2.840.10045.4.3.3",  # ecdsa-with-SHA384
        "1.2.840.10045.4.3.4",  # ecdsa-with-SHA512
        "1.3.101.112",  # Ed25519
    }
)

SUBJECT_KEY_IDENTIFIER = "2.5.29.14"
KEY_USAGE = "2.5.29.15"
BASIC_CONSTRAINTS = "2.5.29.19"
AUTHORITY_KEY_IDENTIFIER = "2.5.29.35"
EXTENDED_KEY_USAGE = "2.5.29.37"
# The extensions the validator understands; any other one marked critical fails it.
_HANDLED_EXTENSIONS = frozenset(
    {
        SUBJECT_KEY_IDENTIFIER,
        KEY_USAGE,
        "2.5.29.17",  # subjectAltName
        BASIC_CONSTRAINTS,
        "2.5.29.20",  # cRLNumber
        "2.5.29.21",  # reasonCode
        "2.5.29.24",  # invalidityDate
        "2.5.29.30",  # nameConstraints
        "2.5.29.31",  # cRLDistributionPoints
        "2.5.29.32",  # certificatePolicies
        "2.5.29.33",  # policyMappings
        AUTHORITY_KEY_IDENTIFIER,
        "2.5.29.36",  # policyConstraints
        EXTENDED_KEY_USAGE,
        "2.5.29.54",  # inhibitAnyPolicy
        "1.3.6.1.5.5.7.1.1",  # authorityInfoAccess
        "2.16.840.1.113730.1.1",  # netscape-cert-type
    }
)

DIGITAL_SIGNATURE, KEY_CERT_SIGN = 0, 5  # keyUsage bits

ANY_EXTENDED_KEY_USAGE = "2.5.29.37.0"
# The EKUs that make a certificate a claim signer's (C2PA's list, less the two below).
CLAIM_SIGNING_EKUS = {
    "1.3.6.1.5.5.7.3.4": "emailProtection",
    "1.3.6.1.5.5.7.3.36": "documentSigning",
    "1.3.6.1.4.1.62558.2.1": "c2pa-kp-claimSigning",
    "1.3.6.1.4.1.311.76.59.1.9": "Microsoft C2PA signing",
}
# A time-stamp authority's and an OCSP responder's: validators refuse them beside others.
_SERVICE_EKUS = {"1.3.6.1.5.5.7.3.8": "timeStamping", "1.3.6.1.5.5.7.3.9": "OCSPSigning"}

COMMON_NAME = "2.5.4.3"

# P-256 (FIPS 186-4 D.1.2.3): y^2 = x^3 - 3x + b over GF(p).
_P = 2**256 - 2**224 + 2**192 + 2**96 - 1
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
P256_POINT_BYTES = 65  # 0x04 || x || y


class SigningIdentityError(ValueError):
    """The signing key or certificate chain cannot sign C2PA claims. The message says why,
    and never holds key material: it is logged and shown in a 503 to the operator."""


class CertificateProfileError(SigningIdentityError):
    """A certificate of the chain breaks the profile C2PA requires, or the chain's order."""


@dataclass(frozen=True)
class _Certificate:
    """The parts of one certificate the profile is checked on."""

    der: bytes
    version: int
    signature_algorithm: str
    issuer: bytes  # the DER Name, compared by its bytes
    subject: bytes
    not_before: float
    not_after: float
    spki: bytes
    key_algorithm: str
    curve: str | None
    public_key: bytes
    has_unique_ids: bool
    extensions: dict[str, tuple[bool, bytes]]  # OID -> (critical, extnValue's contents)


@dataclass(frozen=True)
class SigningChain:
    """A checked chain: ``der`` is C2PA's ``x5chain`` (the leaf first, then its
    intermediates), ``anchor`` the self-signed root the PEM ended with, if it did.

    ``not_before``/``not_after`` bound the time every certificate of ``der`` is valid: a
    claim signed outside it is one validators report as signed by an expired credential
    (without a time-stamp they check the chain against the time they validate at, too).
    """

    der: tuple[bytes, ...]
    leaf_spki: bytes
    leaf_public_point: bytes
    anchor: bytes | None
    not_before: float
    not_after: float

    @classmethod
    def from_pem(cls, text: str, now: float) -> SigningChain:
        """Read and check a PEM chain at ``now`` (Unix seconds). Raises
        :class:`CertificateProfileError` naming the certificate and what is wrong with it
        (:class:`SigningIdentityError` when the text is not PEM at all)."""
        blocks = _pem_blocks(text, "the certificate chain")
        for label, _der in blocks:
            if label == "CERTIFICATE":
                continue
            if "PRIVATE KEY" in label:
                raise CertificateProfileError(
                    f"the certificate chain holds a {label} block: the private key belongs in "
                    "its own secret, never beside the certificates"
                )
            raise CertificateProfileError(
                f"the certificate chain holds a {label} block; it must hold CERTIFICATE blocks only"
            )
        if not blocks:
            raise CertificateProfileError("the certificate chain holds no CERTIFICATE block")
        if len(blocks) > MAX_CHAIN_CERTIFICATES:
            raise CertificateProfileError(
                f"the certificate chain holds {len(blocks)} certificates, more than "
                f"{MAX_CHAIN_CERTIFICATES}"
            )
        certificates = [_parse(der, _ordinal(i)) for i, (_label, der) in enumerate(blocks)]
        anchor = None
        last = certificates[-1]
        if len(certificates) > 1 and last.issuer == last.subject and _is_ca(last):
            anchor = certificates.pop()
        _check_leaf(certificates[0], now)
        for position, intermediate in enumerate(certificates[1:], start=1):
            _check_intermediate(intermediate, _ordinal(position), now)
        _check_order(certificates + ([anchor] if anchor else []))
        leaf = certificates[0]
        return cls(
            der=tuple(certificate.der for certificate in certificates),
            leaf_spki=leaf.spki,
            leaf_public_point=leaf.public_key,
            anchor=anchor.der if anchor else None,
            not_before=max(certificate.not_before for certificate in certificates),
            not_after=min(certificate.not_after for certificate in certificates),
        )

    def check_current(self, now: float) -> None:
        """Refuse to sign at ``now`` outside the chain's validity (the isolate or the
        process may outlive the certificate it was started with)."""
        if now >= self.not_after:
            raise CertificateProfileError(
                f"the certificate chain expired at {_when(self.not_after)}: renew it"
            )
        if now < self.not_before:
            raise CertificateProfileError(
                f"the certificate chain is not valid before {_when(self.not_before)}"
            )


def private_key_der(pem: str) -> bytes:
    """The PKCS#8 DER of a ``BEGIN PRIVATE KEY`` PEM holding an EC P-256 key: what
    WebCrypto imports as ``"pkcs8"``. Other PEM types are refused with how to convert them."""
    blocks = _pem_blocks(pem, "the signing key")
    if len(blocks) != 1:
        raise SigningIdentityError(
            f"the signing key must be one PEM block, 'BEGIN PRIVATE KEY' (PKCS#8); "
            f"it holds {len(blocks)}"
        )
    label, der = blocks[0]
    if label != "PRIVATE KEY":
        raise SigningIdentityError(_KEY_LABELS.get(label, _OTHER_KEY_LABEL.format(label=label)))
    _ec_private_key(der)
    return der


def private_key_public_point(der: bytes) -> bytes | None:
    """The public point (65 bytes, uncompressed) a PKCS#8 P-256 key carries, if it does:
    RFC 5915's ``publicKey`` is optional (OpenSSL and ``cryptography`` write it). Lets the
    key be matched against the certificate without any cryptography."""
    info, key = _ec_private_key(der)
    inside, outside = context(1, constructed=True), context(1, constructed=False)
    try:
        found = [read_one(e.body, BIT_STRING, "publicKey") for e in key[2:] if e.tag == inside]
        # OneAsymmetricKey (RFC 5958) may carry it outside, as [1] IMPLICIT BIT STRING.
        found += [Element(BIT_STRING, e.body, e.encoded) for e in info[3:] if e.tag == outside]
        if not found:
            return None
        point, unused = bit_string(found[0], "the signing key's public key")
    except DerError as exc:
        raise SigningIdentityError(f"the signing key is not valid PKCS#8: {exc}") from None
    return _p256_point(point, unused, "the signing key's public key")


_KEY_LABELS = {
    "EC PRIVATE KEY": (
        "the signing key is a SEC1 'EC PRIVATE KEY'; convert it to PKCS#8 "
        "('BEGIN PRIVATE KEY') with `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
    ),
    "ENCRYPTED PRIVATE KEY": (
        "the signing key is encrypted; store it unencrypted as PKCS#8, as a secret "
        "(`openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
    ),
    "RSA PRIVATE KEY": (
        "the signing key is an RSA key; claims are signed with ES256, which needs an EC P-256 key"
    ),
    "CERTIFICATE": "the signing key holds a certificate, not the private key",
    "PUBLIC KEY": "the signing key holds a public key, not the private key",
}
_OTHER_KEY_LABEL = "the signing key is a '{label}' PEM block, not PKCS#8 ('BEGIN PRIVATE KEY')"


def _ec_private_key(der: bytes) -> tuple[list[Element], list[Element]]:
    """PKCS#8's items and its ECPrivateKey's, once checked to be a P-256 key."""
    try:
        info = read_one(der, SEQUENCE, "the signing key").children("the signing key")
        if len(info) < 3 or integer(info[0], "the key's version") not in (0, 1):
            raise DerError("the signing key is not a PKCS#8 PrivateKeyInfo")
        kind, parameters = algorithm_identifier(info[1], "the key's algorithm")
        if kind != EC_PUBLIC_KEY:
            name = _KEY_TYPES.get(kind, f"of algorithm {kind}")
            raise SigningIdentityError(
                f"the signing key is {name}, not EC P-256: claims are signed with ES256"
            )
        curve = _curve(parameters, "the signing key")
        if curve != P256:
            raise SigningIdentityError(
                f"the signing key is on curve {_CURVES.get(curve, curve)}, not P-256: claims "
                "are signed with ES256"
            )
        inner = info[2].expect(OCTET_STRING, "the key's privateKey")
        key = read_one(inner.body, SEQUENCE, "the ECPrivateKey").children("the ECPrivateKey")
        if len(key) < 2 or integer(key[0], "the ECPrivateKey's version") != 1:
            raise DerError("the ECPrivateKey's version is not 1")
        scalar = key[1].expect(OCTET_STRING, "the private scalar").body
        if not 0 < len(scalar) <= 32:
            raise DerError("the private scalar is not a P-256 one")
        for element in key[2:]:
            if element.tag == context(0, constructed=True):
                named = read_one(element.body, OID, "the ECPrivateKey's curve")
                if object_identifier(named, "the ECPrivateKey's curve") != P256:
                    raise DerError("the ECPrivateKey names another curve than its PKCS#8")
        return info, key
    except DerError as exc:
        raise SigningIdentityError(f"the signing key is not valid PKCS#8: {exc}") from None


def _pem_blocks(text: str, what: str) -> list[tuple[str, bytes]]:
    """Each ``-----BEGIN label-----`` block's label and bytes, in order. Text between the
    blocks (an explanatory line, ``openssl``'s "Bag Attributes") is allowed, as RFC 7468
    says; an unterminated block or bad base64 is not."""
    blocks: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(text):
        label, body, end = match.groups()
        if end != label:
            raise SigningIdentityError(f"{what} has a BEGIN {label} block ended by END {end}")
        try:
            blocks.append((label, binascii.a2b_base64("".join(body.split()), strict_mode=True)))
        except binascii.Error:
            raise SigningIdentityError(f"{what} has a {label} block that is not base64") from None
    if text.count("-----BEGIN ") != len(blocks):
        raise SigningIdentityError(f"{what} has a PEM block without its END line")
    if not blocks and "\\n" in text:
        raise SigningIdentityError(
            f"{what} holds no PEM block: it has '\\n' escapes where its line breaks belong"
        )
    return blocks


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END ([A-Z0-9 ]+)-----", re.S)


def _ordinal(position: int) -> str:
    return "the signing certificate" if position == 0 else f"certificate {position + 1}"


def _parse(der: bytes, what: str) -> _Certificate:
    try:
        return _read_certificate(der, what)
    except DerError as exc:
        raise CertificateProfileError(f"{what} is not a valid X.509 certificate: {exc}") from None


def _read_certificate(der: bytes, what: str) -> _Certificate:
    parts = read_one(der, SEQUENCE, what).children(what)
    if len(parts) != 3:
        raise DerError("a certificate has three parts")
    tbs_element, outer_algorithm, signature = parts
    signature.expect(BIT_STRING, "the signature")
    tbs = tbs_element.expect(SEQUENCE, "the TBSCertificate").children("the TBSCertificate")
    version = 1
    if tbs and tbs[0].tag == context(0, constructed=True):
        version = integer(read_one(tbs[0].body, INTEGER, "the version"), "the version") + 1
        tbs = tbs[1:]
    if len(tbs) < 6:
        raise DerError("the TBSCertificate is missing fields")
    _serial, algorithm, issuer, validity, subject, spki = tbs[:6]
    _serial.expect(INTEGER, "the serial number")
    if algorithm.encoded != outer_algorithm.encoded:
        raise DerError("its two signature algorithm fields differ")
    times = validity.expect(SEQUENCE, "the validity").children("the validity")
    if len(times) != 2:
        raise DerError("the validity is not two times")
    key_parts = spki.expect(SEQUENCE, "the public key info").children("the public key info")
    if len(key_parts) != 2:
        raise DerError("the public key info is not an algorithm and a key")
    kind, parameters = algorithm_identifier(key_parts[0], "the key algorithm")
    key_bits, unused = bit_string(key_parts[1], "the public key")
    if unused:
        raise DerError("the public key is not whole octets")
    has_unique_ids = False
    extensions: dict[str, tuple[bool, bytes]] = {}
    for item in tbs[6:]:
        if item.tag & ~0x20 in (context(1, constructed=False), context(2, constructed=False)):
            has_unique_ids = True
        elif item.tag == context(3, constructed=True) and not extensions:
            extensions = _extensions(item)
        else:
            raise DerError("the TBSCertificate has an unknown field")
    return _Certificate(
        der=der,
        version=version,
        signature_algorithm=algorithm_identifier(outer_algorithm, "the signature algorithm")[0],
        issuer=issuer.expect(SEQUENCE, "the issuer").encoded,
        subject=subject.expect(SEQUENCE, "the subject").encoded,
        not_before=time_value(times[0], "notBefore"),
        not_after=time_value(times[1], "notAfter"),
        spki=spki.encoded,
        key_algorithm=kind,
        curve=_curve(parameters, "the key") if kind == EC_PUBLIC_KEY else None,
        public_key=key_bits,
        has_unique_ids=has_unique_ids,
        extensions=extensions,
    )


def _curve(parameters: list[Element], what: str) -> str:
    """The named curve of an EC key's parameters (explicit curve parameters are refused:
    RFC 5480 forbids them)."""
    if len(parameters) != 1 or parameters[0].tag != OID:
        raise DerError(f"{what} does not name its curve")
    return object_identifier(parameters[0], "the curve")


def _extensions(wrapper: Element) -> dict[str, tuple[bool, bytes]]:
    found: dict[str, tuple[bool, bytes]] = {}
    for oid, critical, value in read_extensions(wrapper, "the extensions"):
        if oid in found:
            raise DerError(f"extension {oid} appears twice")
        found[oid] = (critical, value)
    return found


def _is_ca(certificate: _Certificate) -> bool:
    value = certificate.extensions.get(BASIC_CONSTRAINTS)
    if value is None:
        return False
    try:
        fields = read_one(value[1], SEQUENCE, "basicConstraints").children("basicConstraints")
        return bool(fields) and fields[0].tag == 0x01 and boolean(fields[0], "cA")
    except DerError as exc:
        raise CertificateProfileError(
            f"a certificate's basicConstraints is invalid: {exc}"
        ) from None


def _key_usage(certificate: _Certificate, name: str) -> set[int] | None:
    value = certificate.extensions.get(KEY_USAGE)
    if value is None:
        return None
    try:
        bits, _unused = bit_string(read_one(value[1], BIT_STRING, "keyUsage"), "keyUsage")
    except DerError as exc:
        raise CertificateProfileError(f"{name}: its keyUsage is invalid: {exc}") from None
    return {i for i in range(len(bits) * 8) if bits[i // 8] & (0x80 >> (i % 8))}


def _extended_key_usage(certificate: _Certificate, name: str) -> list[str] | None:
    value = certificate.extensions.get(EXTENDED_KEY_USAGE)
    if value is None:
        return None
    try:
        return key_purposes(value[1])
    except DerError as exc:
        raise CertificateProfileError(f"{name}: its extendedKeyUsage is invalid: {exc}") from None


def _check_common(certificate: _Certificate, name: str, now: float) -> None:
    """What C2PA asks of every certificate ``x5chain`` carries."""
    if certificate.version != 3:
        raise CertificateProfileError(f"{name} is X.509 version {certificate.version}, not 3")
    if certificate.signature_algorithm not in _SIGNATURE_ALGORITHMS:
        raise CertificateProfileError(
            f"{name} is signed with algorithm {certificate.signature_algorithm}, which C2PA "
            "does not allow"
        )
    if now < certificate.not_before:
        raise CertificateProfileError(
            f"{name} is not valid yet: from {_when(certificate.not_before)}"
        )
    if now >= certificate.not_after:
        raise CertificateProfileError(f"{name} has expired: on {_when(certificate.not_after)}")


def _check_leaf(leaf: _Certificate, now: float) -> None:
    name = f"the signing certificate{_cn(leaf)}"
    _check_common(leaf, name, now)
    if _is_ca(leaf):
        raise CertificateProfileError(
            f"{name} is a CA certificate (basicConstraints cA); a claim signer's must be an "
            "end-entity certificate"
        )
    if leaf.issuer == leaf.subject:
        raise CertificateProfileError(
            f"{name} is self-signed; C2PA needs a certificate issued by a CA the validator trusts"
        )
    if leaf.key_algorithm != EC_PUBLIC_KEY:
        kind = _KEY_TYPES.get(leaf.key_algorithm, f"of algorithm {leaf.key_algorithm}")
        raise CertificateProfileError(
            f"{name} has a key that is {kind}, not EC P-256: claims are signed with ES256"
        )
    if leaf.curve != P256:
        curve = _CURVES.get(leaf.curve or "", leaf.curve)
        raise CertificateProfileError(
            f"{name} has an EC key on curve {curve}, not P-256: claims are signed with ES256"
        )
    try:
        _p256_point(leaf.public_key, 0, f"{name}: its public key")
    except SigningIdentityError as exc:
        raise CertificateProfileError(str(exc)) from None
    if leaf.has_unique_ids:
        raise CertificateProfileError(f"{name} has issuer or subject unique IDs, which C2PA bans")
    usage = _key_usage(leaf, name)
    if usage is None:
        raise CertificateProfileError(f"{name} has no keyUsage extension")
    if DIGITAL_SIGNATURE not in usage:
        raise CertificateProfileError(f"{name}: its keyUsage lacks digitalSignature")
    if KEY_CERT_SIGN in usage:
        raise CertificateProfileError(
            f"{name}: its keyUsage has keyCertSign, which an end-entity certificate must not have"
        )
    purposes = _extended_key_usage(leaf, name)
    if purposes is None:
        raise CertificateProfileError(f"{name} has no extendedKeyUsage extension")
    if ANY_EXTENDED_KEY_USAGE in purposes:
        raise CertificateProfileError(
            f"{name}: its extendedKeyUsage has anyExtendedKeyUsage, which C2PA refuses"
        )
    services = sorted(_SERVICE_EKUS[oid] for oid in purposes if oid in _SERVICE_EKUS)
    if services:
        raise CertificateProfileError(
            f"{name}: its extendedKeyUsage has {' and '.join(services)}: a time-stamp authority's "
            "or OCSP responder's purpose, not a claim signer's"
        )
    if not any(oid in CLAIM_SIGNING_EKUS for oid in purposes):
        accepted = ", ".join(CLAIM_SIGNING_EKUS.values())
        raise CertificateProfileError(
            f"{name}: its extendedKeyUsage has none of the purposes C2PA accepts for a claim "
            f"signer ({accepted})"
        )
    if AUTHORITY_KEY_IDENTIFIER not in leaf.extensions:
        raise CertificateProfileError(
            f"{name} has no authorityKeyIdentifier extension, which C2PA validators require"
        )
    _check_critical(leaf, name)


def _check_intermediate(certificate: _Certificate, position: str, now: float) -> None:
    name = f"{position}{_cn(certificate)}"
    _check_common(certificate, name, now)
    if not _is_ca(certificate):
        raise CertificateProfileError(
            f"{name} follows the signing certificate but is not a CA certificate "
            "(basicConstraints cA)"
        )
    usage = _key_usage(certificate, name)
    if usage is not None and KEY_CERT_SIGN not in usage:
        raise CertificateProfileError(f"{name} is a CA whose keyUsage lacks keyCertSign")
    _check_critical(certificate, name)


def _check_critical(certificate: _Certificate, name: str) -> None:
    for oid, (critical, _value) in certificate.extensions.items():
        if critical and oid not in _HANDLED_EXTENSIONS:
            raise CertificateProfileError(
                f"{name} has a critical extension C2PA validators do not handle ({oid})"
            )


def _check_order(certificates: list[_Certificate]) -> None:
    """Each certificate is issued by the next: its issuer name is the next one's subject (as
    encoded: an issuer writes its own subject's bytes), and its authorityKeyIdentifier, when
    both are there, the next one's subjectKeyIdentifier. That tells apart two issuers of one
    name (a renewed intermediate); the signatures themselves are the validator's to check."""
    for position, (certificate, issuer) in enumerate(pairwise(certificates)):
        authority, subject_key = _authority_key_id(certificate), _subject_key_id(issuer)
        if certificate.issuer != issuer.subject or (
            authority is not None and subject_key is not None and authority != subject_key
        ):
            raise CertificateProfileError(
                f"the certificate chain is out of order: {_ordinal(position)}"
                f"{_cn(certificate)} is not issued by certificate {position + 2}{_cn(issuer)}; "
                "give the signing certificate first, then each issuer in turn"
            )


def _authority_key_id(certificate: _Certificate) -> bytes | None:
    """The keyIdentifier of the authorityKeyIdentifier, if it has one."""
    value = certificate.extensions.get(AUTHORITY_KEY_IDENTIFIER)
    if value is None:
        return None
    try:
        fields = read_one(value[1], SEQUENCE, "authorityKeyIdentifier").children("its fields")
    except DerError as exc:
        raise CertificateProfileError(f"an authorityKeyIdentifier is invalid: {exc}") from None
    found = [field.body for field in fields if field.tag == context(0, constructed=False)]
    return found[0] if found else None


def _subject_key_id(certificate: _Certificate) -> bytes | None:
    value = certificate.extensions.get(SUBJECT_KEY_IDENTIFIER)
    if value is None:
        return None
    try:
        return read_one(value[1], OCTET_STRING, "subjectKeyIdentifier").body
    except DerError as exc:
        raise CertificateProfileError(f"a subjectKeyIdentifier is invalid: {exc}") from None


def _p256_point(point: bytes, unused: int, what: str) -> bytes:
    """An uncompressed P-256 point (a BIT STRING's octets), checked to be on the curve."""
    if unused or len(point) != P256_POINT_BYTES or point[0] != 0x04:
        raise SigningIdentityError(f"{what} is not an uncompressed P-256 point")
    x, y = int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big")
    if x >= _P or y >= _P or (y * y - (x * x * x - 3 * x + _B)) % _P:
        raise SigningIdentityError(f"{what} is not a point on P-256")
    return point


def _cn(certificate: _Certificate) -> str:
    """`` (CN=...)`` of the certificate's subject, for messages; empty when it has none."""
    try:
        for relative in read_one(certificate.subject, SEQUENCE, "a name").children("a name"):
            for attribute in relative.children("a name"):
                parts = attribute.children("a name")
                if len(parts) == 2 and object_identifier(parts[0], "a name") == COMMON_NAME:
                    text = _string(parts[1])
                    shown = "".join(c if c.isprintable() else "?" for c in text)[:64]
                    return f" (CN={shown})"
    except DerError:
        return ""
    return ""


def _string(element: Element) -> str:
    if element.tag == 0x1E:  # BMPString
        return element.body.decode("utf-16-be", "replace")
    codec = "utf-8" if element.tag == 0x0C else "latin-1"
    return element.body.decode(codec, "replace")


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
