"""ID tokens on Workers: WebCrypto behind the core's
:class:`~fluxgate.access.id_tokens.SignatureVerifier`, and ``fetch`` behind its
:class:`~fluxgate.access.id_tokens.JwksFetcher`.

Pyodide has no ``cryptography`` wheel to spare and workerd has ``crypto.subtle`` built in
(native code, no CPU charged to Python), so signatures are checked there. The core has
chosen the algorithm and the key already; this imports the public JWK for ``verify`` only
and asks. WebCrypto's ECDSA takes the signature as raw ``r || s``, exactly what JWS
carries. An imported key is kept (per algorithm and RFC 7638 thumbprint, a few dozen at
most): a key set holds a handful of keys that sign every token for hours.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from js import AbortSignal, crypto, fetch
from pyodide.ffi import to_js

from ...access.id_tokens import (
    MAX_JWKS_BYTES,
    FetchedJwks,
    JwksUnavailable,
    cache_max_age,
    jwk_thumbprint,
)
from ..ffi import js_bytes, js_object, js_text

MAX_IMPORTED_KEYS = 32

# What importKey and verify are given, per JWS algorithm (the WebCrypto names).
_IMPORT = {
    "RS256": {"name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256"},
    "ES256": {"name": "ECDSA", "namedCurve": "P-256"},
}
_VERIFY = {
    "RS256": {"name": "RSASSA-PKCS1-v1_5"},
    "ES256": {"name": "ECDSA", "hash": "SHA-256"},
}


class WebCryptoSignatures:
    """RS256 and ES256 with ``crypto.subtle``."""

    def __init__(self, max_keys: int = MAX_IMPORTED_KEYS) -> None:
        self._max_keys = max_keys
        self._keys: OrderedDict[tuple[str, str], Any] = OrderedDict()

    async def verify(
        self, algorithm: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        if algorithm not in _IMPORT:
            raise ValueError(f"unsupported algorithm {algorithm!r}")
        key = await self._key(algorithm, jwk)
        verified = await crypto.subtle.verify(
            js_object(_VERIFY[algorithm]), key, js_bytes(signature), js_bytes(signing_input)
        )
        return verified is True

    async def _key(self, algorithm: str, jwk: Mapping[str, Any]) -> Any:
        name = (algorithm, jwk_thumbprint(jwk))
        key = self._keys.get(name)
        if key is None:
            try:
                key = await crypto.subtle.importKey(
                    "jwk", js_object(dict(jwk)), js_object(_IMPORT[algorithm]), False,
                    to_js(["verify"]),
                )  # fmt: skip
            except Exception as exc:  # a DataError: not a key of this algorithm
                raise ValueError(f"WebCrypto refused the key: {type(exc).__name__}") from None
            while len(self._keys) >= self._max_keys:
                self._keys.popitem(last=False)
            self._keys[name] = key
        self._keys.move_to_end(name)
        return key


class FetchJwksFetcher:
    """A JWKS GET with the runtime's ``fetch``: redirects not followed (a 3xx is returned as
    the status, which the cache counts as a failed fetch), cut off after ``timeout`` seconds,
    a body over :data:`~fluxgate.access.id_tokens.MAX_JWKS_BYTES` refused. Workers' ``fetch``
    does not reach private networks; the URL was checked by the cache before this call."""

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout_ms = int(timeout * 1000)

    async def get(self, url: str) -> FetchedJwks:
        options = js_object(
            {
                "method": "GET",
                "headers": {"accept": "application/json"},
                "redirect": "manual",
                "signal": AbortSignal.timeout(self._timeout_ms),
            }
        )
        try:
            response = await fetch(url, options)
            declared = js_text(response.headers.get("content-length"))
            if declared is not None and (not declared.isdigit() or int(declared) > MAX_JWKS_BYTES):
                body = b""
                oversized = True
            else:
                body, oversized = await _capped(response, MAX_JWKS_BYTES)
        except Exception as exc:
            timed_out = "TimeoutError" in f"{type(exc).__name__} {exc}"
            raise JwksUnavailable("timeout" if timed_out else "connection failed") from None
        if oversized:
            raise JwksUnavailable("the key set is over the size limit")
        max_age = cache_max_age(js_text(response.headers.get("cache-control")))
        return FetchedJwks(int(response.status), bytes(body), max_age)


async def _capped(response: Any, limit: int) -> tuple[bytes, bool]:
    """The body, read a chunk at a time and given up (the stream cancelled) as soon as it
    passes ``limit``: an issuer that sends no ``Content-Length`` is held to the same cap
    without its whole body held in memory first."""
    if response.body is None:
        return b"", False
    reader = response.body.getReader()
    body = bytearray()
    while True:
        chunk = await reader.read()
        if chunk.done:
            return bytes(body), False
        body += chunk.value.to_bytes()
        if len(body) > limit:
            await reader.cancel()
            return b"", True
