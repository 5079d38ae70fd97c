"""Certificate chains for the C2PA signing tests, made with ``cryptography``: a root CA,
optionally an intermediate, and a leaf with the profile a claim signer needs, unless a
keyword breaks one part of it (the key's type, keyUsage, extendedKeyUsage, the CA flag,
the validity, the authorityKeyIdentifier).

Made independently of ``fluxgate.local.c2pa_signer`` (which makes the development chain):
a profile check tested with chains made by the code under test could not fail.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LeafKey = Literal["P-256", "P-384", "RSA"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION
C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
TIME_STAMPING = ExtendedKeyUsageOID.TIME_STAMPING
ANY_EXTENDED_KEY_USAGE = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def pkcs8_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class ChainFiles:
    """Where :meth:`IssuedChain.write` put the PEMs."""

    key: Path
    chain: Path
    root: Path


@dataclass(frozen=True)
class IssuedChain:
    """A leaf's key and its chain: ``chain_pem`` is the leaf, then the intermediate if there
    is one (C2PA's ``x5chain``); ``root_pem`` the self-signed trust anchor, apart."""

    key: PrivateKey
    leaf: x509.Certificate
    intermediate: x509.Certificate | None
    root: x509.Certificate

    @property
    def key_pem(self) -> str:
        """The leaf's private key as PKCS#8 (``BEGIN PRIVATE KEY``)."""
        return pkcs8_pem(self.key)

    @property
    def chain_pem(self) -> str:
        certificates = [self.leaf] + ([self.intermediate] if self.intermediate else [])
        return "".join(pem(certificate) for certificate in certificates)

    @property
    def root_pem(self) -> str:
        return pem(self.root)

    @property
    def chain_with_root_pem(self) -> str:
        return self.chain_pem + self.root_pem

    def write(self, directory: Path) -> ChainFiles:
        """``key.pem`` (0600), ``chain.pem`` and ``root.pem`` in ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        files = ChainFiles(directory / "key.pem", directory / "chain.pem", directory / "root.pem")
        descriptor = os.open(files.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self.key_pem)
        files.chain.write_text(self.chain_pem)
        files.root.write_text(self.root_pem)
        return files


def new_key(kind: LeafKey) -> PrivateKey:
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1() if kind == "P-256" else ec.SECP384R1())


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fluxgate tests"),
        ]
    )


def key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _ca(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    now: dt.datetime,
) -> x509.Certificate:
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name(subject), key)
    return (
        x509.CertificateBuilder()
        .subject_name(name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), False
        )
        .sign(issuer_key, hashes.SHA256())
    )


def issue_chain(
    *,
    now: dt.datetime | None = None,
    leaf_key: LeafKey = "P-256",
    digital_signature: bool = True,
    key_cert_sign: bool = False,
    with_key_usage: bool = True,
    ekus: Sequence[x509.ObjectIdentifier] | None = (EMAIL_PROTECTION, C2PA_CLAIM_SIGNING),
    leaf_is_ca: bool = False,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    with_intermediate: bool = False,
    with_authority_key_id: bool = True,
    critical_extension: x509.ExtensionType | None = None,
    leaf_name: str = "Fluxgate test signer",
) -> IssuedChain:
    """A root (and an intermediate) issuing a leaf valid from a day before ``now`` (the
    current time by default) for a year, with C2PA's claim-signer profile unless a keyword
    says otherwise; ``ekus=None`` leaves out extendedKeyUsage, ``critical_extension`` is
    added, marked critical."""
    now = now or dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca("Fluxgate test root", root_key, None, now)
    issuer, issuer_key = root, root_key
    intermediate = None
    if with_intermediate:
        intermediate_key = ec.generate_private_key(ec.SECP256R1())
        intermediate = _ca("Fluxgate test intermediate", intermediate_key, (root, root_key), now)
        issuer, issuer_key = intermediate, intermediate_key
    key = new_key(leaf_key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(leaf_name))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(days=1))
        .not_valid_after(not_after or now + dt.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=leaf_is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if with_key_usage:
        usage = key_usage(digital_signature=digital_signature, key_cert_sign=key_cert_sign)
        builder = builder.add_extension(usage, critical=True)
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if with_authority_key_id:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
        builder = builder.add_extension(authority, critical=False)
    if critical_extension is not None:
        builder = builder.add_extension(critical_extension, critical=True)
    leaf = builder.sign(issuer_key, hashes.SHA256())
    return IssuedChain(key, leaf, intermediate, root)
