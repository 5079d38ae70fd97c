"""C2PA claim signing, locally: ``cryptography`` behind the core's
:class:`~fluxgate.provenance.signer.ClaimSigner`, and the development identity a local
server signs with when the operator configured none.

The chain is checked by the same pure-Python code the Worker uses
(:class:`~fluxgate.provenance.certificates.SigningChain`), so a chain is refused for the
same reason on both runtimes. ``cryptography`` signs ECDSA in DER; COSE's ES256 carries
raw ``r || s``, so the signature is converted here (and back, to verify).

The development identity is a root CA and a leaf made on first use into
``<data dir>/c2pa/``, named so that no one mistakes it for a real one ("Fluxgate development
signer — untrusted"). Validators report its manifests as signed by an unknown signer unless
told to trust ``dev-root.pem``; the root's private key is never stored, so nothing else can
ever be issued under that root.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..provenance.certificates import (
    SigningChain,
    SigningIdentityError,
    private_key_der,
)

__all__ = [
    "CHAIN_FILE",
    "KEY_FILE",
    "ROOT_FILE",
    "LocalClaimSigner",
    "development_chain",
    "local_claim_signer",
]

ES256_HALF_BYTES = 32  # r and s, each zero-padded to the P-256 order's size
DEVELOPMENT_DIRECTORY = "c2pa"
KEY_FILE = "dev-signing-key.pem"
CHAIN_FILE = "dev-chain.pem"
ROOT_FILE = "dev-root.pem"
DEVELOPER_ORGANIZATION = "Fluxgate (development)"
SIGNER_NAME = "Fluxgate development signer — untrusted"
ROOT_NAME = "Fluxgate development root — untrusted"
LEAF_LIFETIME = dt.timedelta(days=365)
ROOT_LIFETIME = dt.timedelta(days=3650)
RENEW_BEFORE = dt.timedelta(days=30)  # a leaf this close to its end is replaced
BACKDATE = dt.timedelta(hours=1)  # for clocks a little behind this one
C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")


class LocalClaimSigner:
    """ES256 with ``cryptography``: the key is checked at construction to be P-256 and the
    signing certificate's (else :class:`~fluxgate.provenance.certificates.SigningIdentityError`),
    the chain to have C2PA's profile at ``clock()``, and again to be current at each
    signature."""

    def __init__(
        self, key_pem: str, chain_pem: str, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._chain = SigningChain.from_pem(chain_pem, clock())
        der = private_key_der(key_pem)  # a PKCS#8 P-256 key, else a message saying what it is
        try:
            key = serialization.load_der_private_key(der, password=None)
        except ValueError:
            raise SigningIdentityError("cryptography could not load the signing key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise SigningIdentityError("the signing key is not an EC P-256 key")
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        if point != self._chain.leaf_public_point:
            raise SigningIdentityError(
                "the signing key does not match the signing certificate's public key"
            )
        self._key = key
        self._public = key.public_key()

    @property
    def chain(self) -> tuple[bytes, ...]:
        return self._chain.der

    async def sign(self, message: bytes) -> bytes:
        self._chain.check_current(self._clock())
        r, s = decode_dss_signature(self._key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(ES256_HALF_BYTES, "big") + s.to_bytes(ES256_HALF_BYTES, "big")

    async def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * ES256_HALF_BYTES:
            return False
        r = int.from_bytes(signature[:ES256_HALF_BYTES], "big")
        s = int.from_bytes(signature[ES256_HALF_BYTES:], "big")
        try:
            self._public.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True


def local_claim_signer(
    data_dir: Path,
    key_pem: str | None,
    chain_pem: str | None,
    clock: Callable[[], float] = time.time,
) -> LocalClaimSigner:
    """The operator's identity when both PEMs are given, the development one (made in
    ``data_dir`` on first use) when neither is; one without the other is a mistake, refused
    rather than quietly replaced by the development identity."""
    if key_pem and chain_pem:
        return LocalClaimSigner(key_pem, chain_pem, clock)
    if key_pem or chain_pem:
        given, missing = ("key", "chain") if key_pem else ("chain", "key")
        raise SigningIdentityError(
            f"a C2PA signing {given} is configured without its {missing}: give both, or "
            "neither (for the development identity)"
        )
    key, chain, _root = development_chain(data_dir, clock)
    return LocalClaimSigner(key, chain, clock)


def development_chain(
    directory: Path, clock: Callable[[], float] = time.time
) -> tuple[str, str, str]:
    """The development identity's (key PEM, chain PEM, root PEM), from
    ``directory/c2pa/``: made there on first use, reused while its leaf has more than
    :data:`RENEW_BEFORE` to live, made anew otherwise (or when the files do not belong
    together). The key file is 0600.

    Two processes making it at once each sign with the identity they made (consistent in
    memory); the files may then mix the two, which the next start notices and replaces."""
    folder = directory / DEVELOPMENT_DIRECTORY
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    now = clock()
    kept = _kept_identity(folder, now)
    if kept is not None:
        return kept
    key, chain, root = _new_identity(dt.datetime.fromtimestamp(now, dt.UTC))
    _write(folder / ROOT_FILE, root, 0o600)  # the data directory is ours alone
    _write(folder / CHAIN_FILE, chain, 0o600)
    _write(folder / KEY_FILE, key, 0o600)
    return key, chain, root


def _kept_identity(folder: Path, now: float) -> tuple[str, str, str] | None:
    try:
        key, chain, root = (
            (folder / name).read_text() for name in (KEY_FILE, CHAIN_FILE, ROOT_FILE)
        )
        signing = SigningChain.from_pem(chain, now)
        LocalClaimSigner(key, chain, lambda: now)  # the key is the leaf's
        anchor = x509.load_pem_x509_certificate(root.encode())
        x509.load_der_x509_certificate(signing.der[-1]).verify_directly_issued_by(anchor)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return None
    renew_at = signing.not_after - RENEW_BEFORE.total_seconds()
    if now >= renew_at or now >= anchor.not_valid_after_utc.timestamp() - 1:
        return None
    (folder / KEY_FILE).chmod(0o600)  # made by hand, or by an older version, with the umask's
    return key, chain, root


def _new_identity(now: dt.datetime) -> tuple[str, str, str]:
    """A P-256 root CA and a leaf it issues, with the profile C2PA asks of a claim signer."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(ROOT_NAME)
    root = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + ROOT_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(SIGNER_NAME))
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    def pem(certificate: x509.Certificate) -> str:
        return certificate.public_bytes(serialization.Encoding.PEM).decode()

    return key_pem.decode(), pem(leaf), pem(root)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVELOPER_ORGANIZATION),
        ]
    )


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
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


def _write(path: Path, text: str, mode: int) -> None:
    """Write through a new file renamed into place: a reader never sees half a PEM, and
    the key is never, even briefly, readable with the umask's mode."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.replace(temporary, path)
