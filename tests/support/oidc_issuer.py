"""An OpenID Connect issuer double: a real HTTP server on 127.0.0.1 that publishes its keys.

``OidcIssuer`` serves ``/.well-known/openid-configuration`` and ``/jwks`` (with
``Cache-Control: max-age``), and ``POST /sign-in`` (``sub=<user>``: an ID token, what a
provider's sign-in SDK gives an app) from a thread, holds RSA 2048 and EC P-256 signing keys, signs
tokens with them (:meth:`OidcIssuer.sign`) and makes the forgeries a verifier must refuse
(``alg: none``, HS256 keyed with the public key's PEM, a tampered signature). A test can
rotate keys (:meth:`~OidcIssuer.add_key`, :meth:`~OidcIssuer.retire`), take the issuer
down (connection refused, or 503) and count the JWKS fetches. Plain Python (no pytest):
fixtures for either runtime build on it; the Worker fetches its JWKS over loopback too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

KeyKind = Literal["RSA", "EC"]
Outage = Literal["refused", "503"]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _uint(value: int, size: int | None = None) -> str:
    length = size if size is not None else (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(length, "big"))


@dataclass(frozen=True)
class SigningKey:
    """One of the issuer's keys: its id, its algorithm, the private key, its public JWK."""

    kid: str
    alg: str  # RS256 or ES256
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @property
    def jwk(self) -> dict[str, str]:
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            return {"kty": "RSA", "n": _uint(numbers.n), "e": _uint(numbers.e)}
        point = public.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _uint(point.x, 32), "y": _uint(point.y, 32)}

    @property
    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def signature(self, signing_input: bytes) -> bytes:
        """The JWS signature: PKCS#1 v1.5 for RSA, raw ``r || s`` for ECDSA."""
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        der = self.private.sign(signing_input, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def new_key(kind: KeyKind, kid: str) -> SigningKey:
    if kind == "RSA":
        return SigningKey(kid, "RS256", rsa.generate_private_key(65537, 2048))
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def encode(header: Mapping[str, Any], claims: Mapping[str, Any]) -> str:
    """``header.payload`` of a JWS in compact form (the signing input, as text)."""
    parts = (json.dumps(dict(header)).encode(), json.dumps(dict(claims)).encode())
    return ".".join(b64url(part) for part in parts)


class OidcIssuer:
    """The issuer double. Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, *, audience: str = "fluxgate-test-app", max_age: int | None = 600) -> None:
        self.audience = audience
        self.max_age = max_age  # the JWKS's Cache-Control max-age (None: no header)
        self.outage: Outage | None = None
        self.jwks_fetches = 0
        self.keys: dict[str, SigningKey] = {}
        self.published: list[str] = []  # the kids in the JWKS, in order
        self.extra_jwks: list[dict[str, Any]] = []  # raw entries appended to the JWKS
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.add_key("RSA", "rsa-1")
        self.add_key("EC", "ec-1")

    # -- the server --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The issuer (``iss``): http on loopback (allowed under ``allow_loopback`` only)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/jwks"

    def start(self) -> OidcIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.reply(*issuer.answer(self.path))

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.reply(*issuer.sign_in(self.path, self.rfile.read(length)))

            def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        server.daemon_threads = True
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> OidcIssuer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def go_down(self, how: Outage = "refused") -> None:
        """``refused``: nothing listens on the port any more; ``503``: every answer is one."""
        self.outage = how
        if how == "refused":
            self.stop()

    def come_back(self) -> None:
        if self.outage == "refused":
            self.start()  # on the same port
        self.outage = None

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path == "/jwks":
            with self._lock:
                self.jwks_fetches += 1  # every request that reaches it, answered or not
        if self.outage is not None:
            return 503, {"content-type": "text/plain"}, b"unavailable"
        headers = {"content-type": "application/json"}
        if path == "/jwks":
            with self._lock:
                keys = [self.public_jwk(kid) for kid in self.published] + self.extra_jwks
            if self.max_age is not None:
                headers["cache-control"] = f"public, max-age={self.max_age}"
            return 200, headers, json.dumps({"keys": keys}).encode()
        if path == "/.well-known/openid-configuration":
            config = {
                "issuer": self.url,
                "jwks_uri": self.jwks_url,
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "subject_types_supported": ["public"],
                "response_types_supported": ["id_token"],
            }
            return 200, headers, json.dumps(config).encode()
        return 404, headers, b'{"error": "not_found"}'

    def sign_in(self, path: str, form: bytes) -> tuple[int, dict[str, str], bytes]:
        """``POST /sign-in`` with ``sub=<user>``: the ID token a provider's sign-in SDK would
        hand the app for that user (RS256, an hour), for a session run with curl."""
        fields = parse_qs(form.decode(errors="replace"))
        subject = fields.get("sub", [""])[0]
        if path != "/sign-in" or not subject or self.outage is not None:
            return 400, {"content-type": "application/json"}, b'{"error": "invalid_request"}'
        token = self.sign(self.claims(sub=subject))
        body = json.dumps({"id_token": token, "token_type": "Bearer"}).encode()
        return 200, {"content-type": "application/json", "cache-control": "no-store"}, body

    # -- keys --------------------------------------------------------------------------------

    def public_jwk(self, kid: str) -> dict[str, str]:
        key = self.keys[kid]
        return {**key.jwk, "kid": kid, "alg": key.alg, "use": "sig"}

    def add_key(self, kind: KeyKind, kid: str, *, publish: bool = True) -> SigningKey:
        key = self.keys[kid] = new_key(kind, kid)
        if publish:
            with self._lock:
                self.published.append(kid)
        return key

    def retire(self, kid: str) -> None:
        """Take ``kid`` out of the JWKS (its tokens can still be signed, for the tests)."""
        with self._lock:
            self.published.remove(kid)

    # -- tokens ------------------------------------------------------------------------------

    def claims(self, now: float | None = None, **overrides: Any) -> dict[str, Any]:
        """A valid ID token's claims at ``now``: this issuer, its audience, a subject, issued
        now and valid for an hour; ``overrides`` replace them (``None`` removes one)."""
        issued = int(time.time() if now is None else now)
        claims: dict[str, Any] = {
            "iss": self.url,
            "aud": self.audience,
            "sub": "user-1234",
            "iat": issued,
            "exp": issued + 3600,
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        key: str = "rsa-1",
        alg: str | None = None,
        kid: str | None = None,
        header_overrides: Mapping[str, Any] | None = None,
    ) -> str:
        """A token signed with ``key``; its header names ``alg`` (the key's own by default)
        and ``kid`` (``key`` by default); ``header_overrides`` replace header members
        (``None`` removes one: ``{"kid": None}`` for a token without a key id)."""
        signing_key = self.keys[key]
        header: dict[str, Any] = {"alg": alg or signing_key.alg, "typ": "JWT", "kid": kid or key}
        header.update(header_overrides or {})
        header = {name: value for name, value in header.items() if value is not None}
        signing_input = encode(header, claims)
        return f"{signing_input}.{b64url(signing_key.signature(signing_input.encode()))}"

    # -- forgeries ---------------------------------------------------------------------------

    @staticmethod
    def unsigned(claims: Mapping[str, Any]) -> str:
        """An ``alg: none`` token (RFC 7519's unsecured JWT): an empty signature."""
        return encode({"alg": "none", "typ": "JWT"}, claims) + "."

    def hs256_with_public_key(self, claims: Mapping[str, Any], *, key: str = "rsa-1") -> str:
        """The key-confusion forgery: HS256, MAC'd with the RSA public key's PEM as secret
        (what a verifier that takes ``alg`` from the token would check it against)."""
        signing_input = encode({"alg": "HS256", "typ": "JWT", "kid": key}, claims)
        secret = self.keys[key].public_pem
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    @staticmethod
    def tampered(token: str) -> str:
        """``token`` with one bit of its signature flipped."""
        head, _, signature = token.rpartition(".")
        raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
        raw[len(raw) // 2] ^= 0x01
        return f"{head}.{b64url(bytes(raw))}"
