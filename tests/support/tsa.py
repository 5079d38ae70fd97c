"""A time-stamp authority double: an RFC 3161 server on 127.0.0.1 that answers with real
tokens, for the C2PA time-stamp tests.

:class:`TimestampAuthority` holds a test root CA and a TSA certificate it issued (EC P-256
or RSA 2048; extendedKeyUsage timeStamping, critical), and answers a ``TimeStampReq``
(``POST`` with ``Content-Type: application/timestamp-query``) with a ``TimeStampResp``
whose token is CMS SignedData as TSAs make it: eContentType ``id-ct-TSTInfo``, the TSA's
certificate, and one SignerInfo whose signed attributes are contentType, messageDigest and
signingCertificateV2 (ESSCertIDv2), signed with the TSA's key by ``cryptography``. The DER
is written here, not by ``cryptography`` (its PKCS#7 builder cannot set the eContentType),
and independently of the code under test: OpenSSL (``openssl ts -verify``) and c2pa-rs
accept these tokens, which is what makes them a reference.

A test can make it misbehave (:attr:`TimestampAuthority.behaviour`: refuse, answer with
another nonce or imprint, omit the nonce or the certificate, fail over HTTP, send garbage
or too much, or stall), issue its certificate with other key usages (``ekus``), and move
its clock. Every request it received is kept (:attr:`~TimestampAuthority.requests`), with
the headers that came with it. Plain Python, no pytest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from fluxgate.provenance import der

from .c2pa_chain import TIME_STAMPING, key_usage, name, pem

TsaKey = Literal["P-256", "RSA"]
Behaviour = Literal[
    "grant",  # a granted response to the request, as a TSA should
    "grant-with-mods",  # the same, with status grantedWithMods
    "reject",  # status rejection, failInfo badAlg, a status string
    "wrong-nonce",  # a token for the request's imprint with another nonce
    "wrong-imprint",  # a token for another message with the request's nonce
    "no-nonce",  # a token without a nonce
    "no-certificate",  # a token without the TSA's certificate
    "no-token",  # status granted, no token
    "http-500",  # HTTP 500, text body
    "html",  # HTTP 200 with an HTML page
    "garbage",  # HTTP 200 with bytes that are not DER
    "oversized",  # HTTP 200 with a body far over any sane response's size
    "oversized-unsized",  # the same without a Content-Length (read until the cap)
    "stall",  # no answer until the server stops (a client's timeout must end it)
]

SHA256 = "2.16.840.1.101.3.4.2.1"
ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2"
SHA256_WITH_RSA = "1.2.840.113549.1.1.11"
SIGNED_DATA = "1.2.840.113549.1.7.2"
TST_INFO = "1.2.840.113549.1.9.16.1.4"
CONTENT_TYPE = "1.2.840.113549.1.9.3"
MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
POLICY = "1.3.6.1.4.1.55555.1.1"  # the double's TSA policy (an arbitrary private arc)
OVERSIZED_BYTES = 1024 * 1024

# -- DER, written by hand --------------------------------------------------------------------


def tlv(tag: int, body: bytes) -> bytes:
    if len(body) < 0x80:
        return bytes([tag, len(body)]) + body
    size = len(body).to_bytes((len(body).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + body


def seq(*items: bytes) -> bytes:
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """DER's SET OF: the elements sorted by their encodings (X.690 11.6)."""
    return tlv(0x31, b"".join(sorted(items)))


def integer(value: int) -> bytes:
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = b""
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        encoded = bytes([arc & 0x7F])
        while arc > 0x7F:
            arc >>= 7
            encoded = bytes([0x80 | (arc & 0x7F)]) + encoded
        body += encoded
    return tlv(0x06, body)


def octets(data: bytes) -> bytes:
    return tlv(0x04, data)


def explicit(number: int, inner: bytes) -> bytes:
    return tlv(0xA0 | number, inner)


def algorithm(dotted: str, *, null: bool = False) -> bytes:
    return seq(oid(dotted), b"\x05\x00" if null else b"")


def generalized_time(moment: dt.datetime) -> bytes:
    """GeneralizedTime in UTC, with the fraction of a second if there is one (DER: no
    trailing zeros), as TSAs that stamp to the millisecond write it."""
    moment = moment.astimezone(dt.UTC)
    fraction = f".{moment.microsecond:06d}".rstrip("0") if moment.microsecond else ""
    return tlv(0x18, f"{moment:%Y%m%d%H%M%S}{fraction}Z".encode())


# -- what a request asks -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A ``TimeStampReq`` as the double read it."""

    hash_algorithm: bytes  # the AlgorithmIdentifier, DER, echoed into the token
    hash_oid: str
    imprint: bytes
    nonce: int | None
    cert_req: bool


def read_request(data: bytes) -> Request:
    """The request's fields (a :class:`~fluxgate.provenance.der.DerError` if it is not
    one): version 1, messageImprint, then reqPolicy, nonce, certReq, extensions, optional."""
    fields = der.read_one(data, der.SEQUENCE, "TimeStampReq").children("TimeStampReq")
    if len(fields) < 2 or der.integer(fields[0], "version") != 1:
        raise der.DerError("not a version 1 TimeStampReq")
    algorithm_id, digest = fields[1].children("messageImprint")
    hash_oid = der.object_identifier(algorithm_id.children("hashAlgorithm")[0], "hash")
    nonce: int | None = None
    cert_req = False
    for field in fields[2:]:
        if field.tag == der.INTEGER:
            nonce = der.integer(field, "nonce")
        elif field.tag == der.BOOLEAN:
            cert_req = der.boolean(field, "certReq")
    return Request(
        algorithm_id.encoded, hash_oid, digest.expect(der.OCTET_STRING, "digest").body, nonce,
        cert_req,
    )  # fmt: skip


# -- the authority -----------------------------------------------------------------------------


def _root(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(name("Fluxgate test TSA root"))
        .issuer_name(name("Fluxgate test TSA root"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


class TimestampAuthority:
    """The TSA double. Use as a context manager, or call :meth:`start` and :meth:`stop`;
    :meth:`respond` answers a request without HTTP."""

    def __init__(
        self,
        *,
        key: TsaKey = "P-256",
        ekus: Sequence[x509.ObjectIdentifier] = (TIME_STAMPING,),
        clock: Callable[[], dt.datetime] | None = None,
        certificate_days: int = 365,
    ) -> None:
        self.clock: Callable[[], dt.datetime] = clock or (lambda: dt.datetime.now(dt.UTC))
        self.behaviour: Behaviour = "grant"
        self.requests: list[tuple[bytes, dict[str, str]]] = []  # body, lower-cased headers
        self.serial = 0
        now = self.clock()
        root_key = ec.generate_private_key(ec.SECP256R1())
        self.root = _root(root_key, now)
        self.key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
            rsa.generate_private_key(65537, 2048)
            if key == "RSA"
            else ec.generate_private_key(ec.SECP256R1())
        )
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name("Fluxgate test TSA"))
            .issuer_name(self.root.subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=certificate_days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(digital_signature=True), critical=True)
            .add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
            )
            .sign(root_key, hashes.SHA256())
        )
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._port = 0

    @property
    def root_pem(self) -> str:
        """The trust anchor a validator needs to trust this TSA's tokens."""
        return pem(self.root)

    @property
    def certificate_pem(self) -> str:
        return pem(self.certificate)

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    # -- the server ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}/tsa"

    def start(self) -> TimestampAuthority:
        authority = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {key.lower(): value for key, value in self.headers.items()}
                status, content_type, answer = authority.answer(body, headers)
                if status == 0:  # stall: hold the connection until the server stops
                    authority._stopping.wait()
                    return
                self.send_response(status)
                self.send_header("content-type", content_type)
                if authority.behaviour != "oversized-unsized":  # else: until the close
                    self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                return

        self._stopping.clear()
        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TimestampAuthority:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, body: bytes, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """(HTTP status, content type, body) for a POSTed request; status 0: stall."""
        with self._lock:
            self.requests.append((body, headers))
        reply = "application/timestamp-reply"
        if self.behaviour == "http-500":
            return 500, "text/plain", b"the TSA is down"
        if self.behaviour == "html":
            return 200, "text/html", b"<html><body>Sign in to continue</body></html>"
        if self.behaviour == "garbage":
            return 200, reply, b"\x30\x82\xff\xff not DER"
        if self.behaviour in ("oversized", "oversized-unsized"):
            return 200, reply, b"\x30" * OVERSIZED_BYTES
        if self.behaviour == "stall":
            return 0, "", b""
        try:
            return 200, reply, self.respond(body)
        except der.DerError:
            return 200, reply, response(status=2, fail_bit=5, text="bad request")

    # -- tokens --------------------------------------------------------------------------------

    def respond(self, request_der: bytes) -> bytes:
        """The DER ``TimeStampResp`` to ``request_der``, as :attr:`behaviour` says."""
        request = read_request(request_der)
        if self.behaviour == "reject":
            return response(status=2, fail_bit=0, text="unsupported hash algorithm")
        if self.behaviour == "no-token":
            return response(status=0)
        imprint, nonce = request.imprint, request.nonce
        if self.behaviour == "wrong-nonce":
            nonce = (nonce or 0) + 1
        elif self.behaviour == "wrong-imprint":
            imprint = hashlib.sha256(b"another message").digest()
        elif self.behaviour == "no-nonce":
            nonce = None
        token = self.token(
            request.hash_algorithm,
            imprint,
            nonce,
            with_certificate=request.cert_req and self.behaviour != "no-certificate",
        )
        return response(status=1 if self.behaviour == "grant-with-mods" else 0, token=token)

    def token(
        self,
        hash_algorithm: bytes,
        imprint: bytes,
        nonce: int | None,
        *,
        with_certificate: bool = True,
    ) -> bytes:
        """A ``TimeStampToken`` (ContentInfo) over ``imprint``, stamped at :attr:`clock`."""
        with self._lock:
            self.serial += 1
            serial = self.serial
        tst_info = seq(
            integer(1),
            oid(POLICY),
            seq(hash_algorithm, octets(imprint)),
            integer(serial),
            generalized_time(self.clock()),
            seq(integer(1)),  # accuracy: a second
            integer(nonce) if nonce is not None else b"",
        )
        certificate = self.certificate_der
        issuer = self.certificate.issuer.public_bytes()
        ess_cert_id = seq(  # hashAlgorithm left out: SHA-256 is its DEFAULT
            octets(hashlib.sha256(certificate).digest()),
            seq(seq(explicit(4, issuer)), integer(self.certificate.serial_number)),
        )
        attributes = [
            seq(oid(CONTENT_TYPE), set_of(oid(TST_INFO))),
            seq(oid(MESSAGE_DIGEST), set_of(octets(hashlib.sha256(tst_info).digest()))),
            seq(oid(SIGNING_CERTIFICATE_V2), set_of(seq(seq(ess_cert_id)))),
        ]
        signed_attributes = set_of(*attributes)
        if isinstance(self.key, rsa.RSAPrivateKey):
            signature = self.key.sign(signed_attributes, padding.PKCS1v15(), hashes.SHA256())
            signature_algorithm = algorithm(SHA256_WITH_RSA, null=True)
        else:
            signature = self.key.sign(signed_attributes, ec.ECDSA(hashes.SHA256()))
            signature_algorithm = algorithm(ECDSA_WITH_SHA256)
        signer_info = seq(
            integer(1),
            seq(issuer, integer(self.certificate.serial_number)),
            algorithm(SHA256),
            tlv(0xA0, signed_attributes[_header_length(signed_attributes) :]),
            signature_algorithm,
            octets(signature),
        )
        signed_data = seq(
            integer(3),
            set_of(algorithm(SHA256)),
            seq(oid(TST_INFO), explicit(0, octets(tst_info))),
            tlv(0xA0, certificate) if with_certificate else b"",
            set_of(signer_info),
        )
        return seq(oid(SIGNED_DATA), explicit(0, signed_data))


def _header_length(encoded: bytes) -> int:
    return 2 if encoded[1] < 0x80 else 2 + (encoded[1] & 0x7F)


def response(
    *, status: int, token: bytes = b"", fail_bit: int | None = None, text: str | None = None
) -> bytes:
    """A ``TimeStampResp``: PKIStatusInfo (status, statusString, failInfo), then the token."""
    details = b""
    if text is not None:
        details += seq(tlv(0x0C, text.encode()))
    if fail_bit is not None:
        size = fail_bit // 8 + 1
        bits = (1 << (size * 8 - 1 - fail_bit)).to_bytes(size, "big")
        details += tlv(0x03, bytes([7 - fail_bit % 8]) + bits)
    return seq(seq(integer(status), details), token)
