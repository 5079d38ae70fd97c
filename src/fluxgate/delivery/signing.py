"""Signed, expiring URLs for stored images.

The signature is HMAC-SHA256 over method, path, expiry and key id. Carrying the key id in
the URL lets the secret rotate: a new key signs, old keys keep verifying until the URLs they
signed expire and the operator drops them. The query holds no secret, only the MAC.
This module is pydantic-free: the Workers file route uses it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import ApiError
from ..imaging.b64 import urlsafe_encode


class SignatureError(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(403, code, message)


class SigningConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes


def parse_signing_keys(spec: str) -> list[SigningKey]:
    """Parse ``"kid=secret,oldkid=oldsecret"``: the first key signs, every key verifies."""
    keys: list[SigningKey] = []
    for item in spec.split(","):
        item = item.strip()
        if not item:
            continue
        kid, sep, secret = item.partition("=")
        kid, secret = kid.strip(), secret.strip()
        if not sep or not kid or not secret:
            raise SigningConfigError("URL signing keys must look like 'kid=secret,kid2=secret2'.")
        if not kid.isalnum() or len(kid) > 32:
            raise SigningConfigError("A signing key id must be 1-32 letters or digits.")
        if len(secret) < 32:
            raise SigningConfigError(
                f"The signing secret for key '{kid}' is shorter than 32 chars."
            )
        keys.append(SigningKey(kid, secret.encode()))
    if not keys:
        raise SigningConfigError("No URL signing key is configured.")
    if len({k.kid for k in keys}) != len(keys):
        raise SigningConfigError("URL signing key ids must be unique.")
    return keys


def is_decimal(text: str) -> bool:
    """Whether ``text`` is ASCII digits only, the one spelling of a number on the wire.

    ``str.isdigit()`` alone also accepts ``'²'`` (which ``int()`` refuses) and ``'٣'``
    (which ``int()`` reads as 3): neither may reach ``int()``. Callers bound the length
    too: ``int()`` refuses more than 4300 digits.
    """
    return text.isascii() and text.isdigit()


class UrlSigner:
    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise SigningConfigError("No URL signing key is configured.")
        self._current = keys[0]
        self._keys = {k.kid: k for k in keys}

    def _mac(self, key: SigningKey, method: str, path: str, expires: int, extra: str = "") -> str:
        message = f"{method.upper()}\n{path}\n{expires}\n{key.kid}"
        if extra:
            message += f"\n{extra}"
        return urlsafe_encode(hmac.digest(key.secret, message.encode(), "sha256"))

    @property
    def current_kid(self) -> str:
        return self._current.kid

    def keyed_macs(self, purpose: str, message: str) -> list[str]:
        """``keyed_mac`` under every configured key, the current one first (for signatures
        that must stay verifiable by holders of an older derived secret during rotation)."""
        kids = [self._current.kid, *(k for k in self._keys if k != self._current.kid)]
        return [mac for kid in kids if (mac := self.keyed_mac(purpose, message, kid))]

    def keyed_mac(self, purpose: str, message: str, kid: str | None = None) -> str | None:
        """MAC of ``message`` for another ``purpose`` (client tokens), with the same keyring.

        The purpose prefix separates domains: no URL signature is ever a valid token MAC or
        the reverse, since URL messages start with an HTTP method. ``None`` for an unknown
        key id.
        """
        key = self._current if kid is None else self._keys.get(kid)
        if key is None:
            return None
        text = f"fluxgate:{purpose}\n{message}\n{key.kid}".encode()
        return urlsafe_encode(hmac.digest(key.secret, text, "sha256"))

    def sign(self, path: str, expires: int, method: str = "GET", cache_key: str = "") -> str:
        """Return the query string (without ``?``) that authorises ``method path``.

        ``cache_key`` (optional, covered by the MAC) names the cache entry the URL was made
        from, so the file route can drop that entry if the object has vanished.
        """
        sig = self._mac(self._current, method, path, expires, cache_key)
        extra = f"&c={cache_key}" if cache_key else ""
        return f"exp={expires}&kid={self._current.kid}{extra}&sig={sig}"

    def verify(self, path: str, query: Mapping[str, str], now: float, method: str = "GET") -> int:
        """Check a signed request; return its expiry, or raise :class:`SignatureError` (403).

        The MAC is checked before the expiry so that a forged URL never learns whether its
        expiry would have been accepted. ``exp`` must be the canonical spelling the signer
        wrote (ASCII digits, no leading zeros, at most 12): any other is refused before
        ``int()`` sees it, so no spelling of a parameter can raise.
        """
        exp_text, kid, sig = query.get("exp"), query.get("kid"), query.get("sig")
        if not exp_text or not kid or not sig:
            raise SignatureError("invalid_signature", "The URL is not signed.")
        key = self._keys.get(kid)
        if key is None or len(exp_text) > 12 or not is_decimal(exp_text):
            raise SignatureError("invalid_signature", "The URL signature is not valid.")
        expires = int(exp_text)
        if str(expires) != exp_text:  # "0001800000000" is not what was signed
            raise SignatureError("invalid_signature", "The URL signature is not valid.")
        extra = query.get("c") or ""
        if len(extra) > 128:
            raise SignatureError("invalid_signature", "The URL signature is not valid.")
        verb = "GET" if method.upper() == "HEAD" else method
        expected = self._mac(key, verb, path, expires, extra)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            raise SignatureError("invalid_signature", "The URL signature is not valid.")
        if expires <= now:
            raise SignatureError("url_expired", "The URL has expired; fetch a fresh one.")
        return expires
