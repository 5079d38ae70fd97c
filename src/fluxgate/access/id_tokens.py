"""OpenID Connect ID tokens (JWTs) checked against their issuer's published keys (JWKS).

One set of rules for both runtimes: this module decides everything (which algorithms, which
key, which claims, how long a key set is trusted); a runtime only supplies the two things
it does differently, behind :class:`SignatureVerifier` (WebCrypto on Workers,
``cryptography`` locally) and :class:`JwksFetcher` (``fetch`` or httpx). No ``js``, no
httpx, no ``cryptography`` here.

The rules, in the order a token meets them:

- **Shape.** At most :data:`MAX_TOKEN_BYTES`, three strict base64url parts, a header and a
  payload that are JSON objects without duplicate names (two ``exp`` could be read two
  ways). A header with ``crit`` is refused (no extension is understood), ``typ`` is absent
  or ``JWT``.
- **Algorithm, before any key is looked up.** ``alg`` must be in :data:`SUPPORTED_ALGORITHMS`
  and in the issuer's own list: ``none`` and the HMAC family never are, since an HMAC
  "verified" with a public key (whose text anyone has) is the classic forgery. The key must
  be of the algorithm's type (RSA of at least 2048 bits for RS256, EC P-256 for ES256):
  the algorithm is never inferred from the key, nor the key's use from the token.
- **Issuer.** ``iss`` must be one of the trusted issuers passed in (it is read before the
  signature only to pick the key set; nothing else of the payload is believed until the
  signature holds).
- **Signature**, with the key named by ``kid`` from the issuer's JWKS.
- **Claims.** ``sub`` (a string), ``exp`` and ``iat`` are required, ``nbf`` optional (JSON
  numbers, never booleans); each time check allows :data:`CLOCK_SKEW_SECONDS` of clock
  skew either way; ``iat`` more than that in the future is not yet valid, and an issuer
  may bound a token's age (``max_age_seconds``). ``aud`` (a string or a list of strings)
  must name one of the issuer's audiences.

The key sets are cached per JWKS URL (:class:`JwksCache`): fresh for the issuer's
``Cache-Control: max-age`` clamped to [:data:`MIN_FRESH_SECONDS`, :data:`MAX_FRESH_SECONDS`]
(:data:`DEFAULT_FRESH_SECONDS` without one); a ``kid`` not in the set triggers one refetch
(rotation: a new key is published before tokens are signed with it), at most once per
:data:`REFETCH_INTERVAL_SECONDS` per URL, so a stream of made-up ``kid`` values cannot make
the gateway hammer the issuer; when the issuer is down, the last good set is served for up
to :data:`STALE_SECONDS` past its freshness, and failed fetches are not retried more often
than the refetch interval either. Concurrent requests for one URL share one fetch.

Every refusal is an :class:`~fluxgate.errors.ApiError` with a stable code (see
:data:`CODES`); its message names the kind of token and, at most, the trusted issuer,
never the token or its claims. Logs carry the issuer and :func:`subject_hash` only.
Pydantic-free, and nothing runs at import time (workerd snapshots module state).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

from ..errors import ApiError, unauthorized

log = logging.getLogger("fluxgate.id_tokens")

SUPPORTED_ALGORITHMS = ("RS256", "ES256")
CLOCK_SKEW_SECONDS = 60
MAX_TOKEN_BYTES = 16 * 1024
MAX_SUBJECT_LENGTH = 255  # OpenID Connect Core 1.0, section 2: at most 255 ASCII characters
MIN_RSA_MODULUS_BYTES = 256  # 2048 bits

MAX_JWKS_BYTES = 256 * 1024
MIN_FRESH_SECONDS = 300
MAX_FRESH_SECONDS = 86_400
DEFAULT_FRESH_SECONDS = 3_600
REFETCH_INTERVAL_SECONDS = 60
STALE_SECONDS = 86_400
MAX_JWKS_URLS = 64
MAX_URL_LENGTH = 2048

CODES = {
    "invalid_id_token": 401,
    "id_token_algorithm_not_allowed": 401,
    "untrusted_issuer": 401,
    "id_token_unknown_key": 401,
    "id_token_signature_invalid": 401,
    "id_token_expired": 401,
    "id_token_not_yet_valid": 401,
    "id_token_too_old": 401,
    "id_token_audience_mismatch": 401,
    "issuer_unavailable": 503,
}

# What a refusal calls the token, by the ``what`` the caller passes.
_NOUNS = {"id_token": "ID token", "app_check": "App Check token"}
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
# The members that define a public key (RFC 7638's thumbprint members): all a verifier gets.
_KEY_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
_KEY_TYPES = {"RS256": ("RSA", None), "ES256": ("EC", "P-256")}


# -- the public types -------------------------------------------------------------------------


@dataclass(frozen=True)
class TrustedIssuer:
    """An issuer whose tokens are accepted, and for whom (its audiences)."""

    issuer: str  # the exact ``iss`` value
    audiences: tuple[str, ...]  # the token's ``aud`` (a string or a list) must name one
    jwks_url: str
    algorithms: tuple[str, ...] = ("RS256", "ES256")  # a subset of SUPPORTED_ALGORITHMS
    max_age_seconds: int | None = None  # refused when now - iat > this (+ skew)
    also_issuer: tuple[str, ...] = ()  # other spellings of iss ("accounts.google.com")

    def __post_init__(self) -> None:
        """A configuration that could never accept a token, or would accept a forged one, is
        refused when it is made (when a key's configuration is saved), not per request."""
        if not self.issuer or not self.audiences or not all(self.audiences):
            raise ValueError("a trusted issuer needs its iss value and at least one audience")
        if not self.algorithms or not set(self.algorithms) <= set(SUPPORTED_ALGORITHMS):
            raise ValueError(f"algorithms must be among {', '.join(SUPPORTED_ALGORITHMS)}")
        if self.max_age_seconds is not None and self.max_age_seconds <= 0:
            raise ValueError("max_age_seconds must be positive")

    def names(self, iss: str) -> bool:
        return iss == self.issuer or iss in self.also_issuer


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and claims hold."""

    issuer: TrustedIssuer
    subject: str
    claims: Mapping[str, Any]
    key_id: str | None
    algorithm: str


class SignatureVerifier(Protocol):
    """A runtime's signature check (WebCrypto on Workers, ``cryptography`` locally)."""

    async def verify(
        self, algorithm: str, jwk: Mapping[str, Any], signing_input: bytes, signature: bytes
    ) -> bool:
        """Whether ``signature`` is ``jwk``'s over ``signing_input``: ``False`` for a bad
        signature; :class:`ValueError` for a key (or algorithm) it cannot use. ``jwk`` holds
        only the key's defining members (``kty``, ``n``/``e`` or ``crv``/``x``/``y``)."""
        ...


@dataclass(frozen=True)
class FetchedJwks:
    """An issuer's answer to a JWKS request, as the cache judges it."""

    status: int
    body: bytes
    max_age: int | None  # from Cache-Control max-age, if any (see :func:`cache_max_age`)


class JwksUnavailable(Exception):
    """No answer from the issuer (connection failed, timed out, body over the cap)."""


class JwksFetcher(Protocol):
    """A runtime's GET of a JWKS URL: no redirects followed, a short timeout, at most
    :data:`MAX_JWKS_BYTES` read."""

    async def get(self, url: str) -> FetchedJwks:
        """The answer, whatever its status; :class:`JwksUnavailable` when there is none."""
        ...


# -- helpers both runtimes use ---------------------------------------------------------------


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (RFC 7515): any other character is an error, not skipped."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cache_max_age(cache_control: str | None) -> int | None:
    """The ``max-age`` of a ``Cache-Control`` header (0 for ``no-store``/``no-cache``, which
    the cache then clamps to its minimum), ``None`` without one."""
    if not cache_control:
        return None
    max_age: int | None = None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip()
        if name in ("no-store", "no-cache"):
            return 0
        value = value.strip().strip('"')
        if name == "max-age" and value.isascii() and value.isdigit() and len(value) <= 10:
            max_age = int(value)
    return max_age


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 thumbprint (SHA-256, base64url) of a public JWK: one name per key, whatever
    else its JWKS entry carries (what a runtime may memoise an imported key under)."""
    members = _KEY_MEMBERS.get(str(jwk.get("kty")), tuple(sorted(jwk)))
    canonical = json.dumps({m: jwk.get(m) for m in members}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def subject_hash(issuer: str, subject: str) -> str:
    """A short, stable name for a subject in logs (the subject itself is personal data)."""
    text = f"{issuer}\n{subject}".encode(errors="surrogatepass")  # JSON allows lone surrogates
    return hashlib.sha256(text).hexdigest()[:16]


# -- issuer URLs -----------------------------------------------------------------------------

_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?")
# A host whose last label is a number is read as an IPv4 address by URL parsers (WHATWG).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")
_LOCAL_NAMES = frozenset(
    {"localhost", "local", "internal", "intranet", "lan", "home", "corp", "private", "arpa"}
)


def _address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if address.is_loopback:
        return "a loopback address"
    if not address.is_global or address.is_multicast:
        return "a private, link-local or special-purpose address"
    return None


def check_issuer_url(url: str, *, allow_loopback: bool) -> str:
    """``url`` when keys may be fetched from it, else :class:`ValueError` with the reason.

    https to a public host only: no credentials, no fragment, no IP literal outside the
    global unicast ranges, no single-label or internal names. Numeric hosts must be plain
    dotted quads (``127.1`` or ``0x7f.0.0.1`` are refused rather than interpreted). With
    ``allow_loopback`` (local tests, as ``WEBHOOK_ALLOW_LOOPBACK`` for webhooks), loopback
    hosts are allowed too, over http or https.
    """
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        raise ValueError("must be a URL of at most 2048 characters")
    if _UNSAFE.search(url) or not url.isascii():
        raise ValueError("must be ASCII, without spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("https", "http"):
        raise ValueError("must use https")
    if "@" in parts.netloc:
        raise ValueError("must not carry credentials")
    if parts.fragment or url.endswith("#"):
        raise ValueError("must not have a fragment")
    if port == 0:
        raise ValueError("has a malformed port")
    host = (parts.hostname or "").rstrip(".")
    loopback = False
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    if not host or "%" in host:
        raise ValueError("must name a host (not percent-encoded)")
    if parts.netloc.startswith("["):
        try:
            address = ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError("has a malformed IPv6 address") from None
    elif _NUMERIC_LABEL.fullmatch(host.split(".")[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("has an IPv4 address in an unusual spelling") from None
    else:
        labels = host.split(".")
        if not all(_LABEL.fullmatch(label) for label in labels):
            raise ValueError("has a malformed host name")
        if host == "localhost":
            loopback = True
        elif len(labels) < 2:
            raise ValueError("must name a public host, not a single-label host name")
        elif labels[-1] in _LOCAL_NAMES:
            raise ValueError("must name a public host, not a local or internal host name")
    if address is not None:
        why = _address_refusal(address)
        loopback = address.is_loopback
        if why is not None and not (loopback and allow_loopback):
            raise ValueError(f"must name a public host, not {why}")
    if loopback and not allow_loopback:
        raise ValueError("must name a public host, not a loopback host")
    if scheme != "https" and not loopback:
        raise ValueError("must use https")
    return url


# -- refusals ---------------------------------------------------------------------------------


def _noun(what: str) -> str:
    try:
        return _NOUNS[what]
    except KeyError:
        raise ValueError(f"unknown kind of token: {what!r}") from None


def _refused(code: str, noun: str, why: str) -> ApiError:
    return unauthorized(code, f"The {noun} {why}.", invalid_token=True)


def _issuer_unavailable(noun: str, retry_after: int) -> ApiError:
    return ApiError(
        503,
        "issuer_unavailable",
        f"The signing keys of the {noun}'s issuer could not be fetched. Retry later.",
        headers={"Retry-After": str(retry_after)},
    )


# -- the key sets -----------------------------------------------------------------------------


def _public_key(candidate: Any) -> dict[str, str] | None:
    """A JWKS entry reduced to its defining members, ``None`` when it is no usable
    signature key (not an object, ``use`` other than ``sig``, members missing)."""
    if not isinstance(candidate, dict):
        return None
    if candidate.get("use", "sig") != "sig":
        return None
    members = _KEY_MEMBERS.get(candidate.get("kty"))  # type: ignore[arg-type]
    if members is None or not all(isinstance(candidate.get(m), str) for m in members):
        return None
    return {m: candidate[m] for m in members}


@dataclass(frozen=True)
class _Key:
    kid: str | None
    alg: str | None  # the JWKS entry's own ``alg``, when given
    jwk: Mapping[str, str]

    def fits(self, alg: str) -> bool:
        """Whether this key may verify ``alg``: its type (and curve, and RSA size)."""
        kty, crv = _KEY_TYPES[alg]
        if self.jwk["kty"] != kty or (crv is not None and self.jwk.get("crv") != crv):
            return False
        if self.alg is not None and self.alg != alg:
            return False
        if kty == "RSA":
            try:
                return len(b64url_decode(self.jwk["n"]).lstrip(b"\0")) >= MIN_RSA_MODULUS_BYTES
            except (ValueError, binascii.Error):
                return False
        return True


def _parse_jwks(body: bytes) -> tuple[_Key, ...]:
    """The usable keys of a JWKS document; :class:`ValueError` when it is not one."""
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("over the size limit")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JSON object with a list of keys")
    keys = []
    for candidate in document["keys"]:
        jwk = _public_key(candidate)
        if jwk is not None:
            kid, alg = candidate.get("kid"), candidate.get("alg")
            keys.append(
                _Key(
                    kid if isinstance(kid, str) else None,
                    alg if isinstance(alg, str) else None,
                    MappingProxyType(jwk),
                )
            )
    return tuple(keys)


@dataclass
class _KeySet:
    """One JWKS URL's cached keys and the times that govern refetching them."""

    keys: tuple[_Key, ...] | None = None  # None: never fetched successfully
    fresh_until: float = -math.inf
    last_attempt: float = -math.inf
    last_failed: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def fresh(self, now: float) -> bool:
        return self.keys is not None and now < self.fresh_until

    def usable(self, now: float) -> bool:
        return self.keys is not None and now < self.fresh_until + STALE_SECONDS

    def may_fetch(self, now: float) -> bool:
        return now - self.last_attempt >= REFETCH_INTERVAL_SECONDS

    def retry_after(self, now: float) -> int:
        wait = self.last_attempt + REFETCH_INTERVAL_SECONDS - now
        return max(1, min(REFETCH_INTERVAL_SECONDS, math.ceil(wait)))


class JwksCache:
    """Issuers' key sets, per JWKS URL, under the refetch and staleness bounds of the module
    docstring. One per isolate or process: the bounds hold per cache."""

    def __init__(
        self,
        fetcher: JwksFetcher,
        clock: Callable[[], float],
        *,
        allow_loopback: bool = False,
        max_urls: int = MAX_JWKS_URLS,
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._allow_loopback = allow_loopback
        self._max_urls = max_urls
        self._sets: OrderedDict[str, _KeySet] = OrderedDict()

    async def key(
        self, jwks_url: str, kid: str | None, alg: str, *, what: str = "id_token"
    ) -> Mapping[str, Any]:
        """The public JWK (defining members only) that verifies ``alg`` under ``kid``.

        Refusals: ``untrusted_issuer`` (a URL keys may not be fetched from),
        ``id_token_algorithm_not_allowed`` (the ``kid``'s key is of another type),
        ``id_token_unknown_key``, ``issuer_unavailable``.
        """
        noun = _noun(what)
        if alg not in _KEY_TYPES:
            raise _refused("id_token_algorithm_not_allowed", noun, "uses an algorithm not allowed")
        try:
            check_issuer_url(jwks_url, allow_loopback=self._allow_loopback)
        except ValueError:
            raise _refused(
                "untrusted_issuer", noun, "names an issuer whose keys may not be fetched"
            ) from None
        key_set = self._key_set(jwks_url)
        if not key_set.fresh(self._clock()):
            await self._refresh(jwks_url, key_set, noun, force=False)
        jwk = _select(key_set, kid, alg, noun)
        if jwk is None and key_set.may_fetch(self._clock()):  # perhaps rotated: look again
            await self._refresh(jwks_url, key_set, noun, force=True)
            jwk = _select(key_set, kid, alg, noun)
        if jwk is not None:
            return jwk
        if key_set.last_failed:  # the issuer is down: the key may be in the set it would serve
            raise _issuer_unavailable(noun, key_set.retry_after(self._clock()))
        raise _refused(
            "id_token_unknown_key", noun, "is signed with a key its issuer does not publish"
        )

    def _key_set(self, url: str) -> _KeySet:
        key_set = self._sets.get(url)
        if key_set is None:
            while len(self._sets) >= self._max_urls:
                self._sets.popitem(last=False)
            key_set = self._sets[url] = _KeySet()
        self._sets.move_to_end(url)
        return key_set

    async def _refresh(self, url: str, key_set: _KeySet, noun: str, *, force: bool) -> None:
        """Fetch ``url`` unless another request just did (they wait on one lock, and the
        refetch interval stops the followers), then insist on a usable set."""
        async with key_set.lock:
            now = self._clock()
            if (force or not key_set.fresh(now)) and key_set.may_fetch(now):
                await self._fetch(url, key_set, now)
        now = self._clock()
        if not key_set.usable(now):
            raise _issuer_unavailable(noun, key_set.retry_after(now))

    async def _fetch(self, url: str, key_set: _KeySet, now: float) -> None:
        key_set.last_attempt = now
        try:
            answer = await self._fetcher.get(url)
            if answer.status != 200:
                raise ValueError(f"HTTP {answer.status}")
            keys = _parse_jwks(answer.body)
        except (JwksUnavailable, ValueError) as exc:
            key_set.last_failed = True
            host = urlsplit(url).hostname
            stale = "serving the cached keys" if key_set.usable(now) else "no usable cached keys"
            log.warning("JWKS fetch from %s failed (%s); %s", host, exc, stale)
            return
        fresh_for = DEFAULT_FRESH_SECONDS if answer.max_age is None else answer.max_age
        key_set.keys = keys
        key_set.fresh_until = now + min(MAX_FRESH_SECONDS, max(MIN_FRESH_SECONDS, fresh_for))
        key_set.last_failed = False


def _select(key_set: _KeySet, kid: str | None, alg: str, noun: str) -> Mapping[str, str] | None:
    """The key for ``kid`` (or the one key of ``alg``'s type, for a token without ``kid``)."""
    keys = key_set.keys or ()
    if kid is None:
        fitting = [k for k in keys if k.fits(alg)]
        return fitting[0].jwk if len(fitting) == 1 else None
    named = [k for k in keys if k.kid == kid]
    for key in named:
        if key.fits(alg):
            return key.jwk
    if named:
        raise _refused(
            "id_token_algorithm_not_allowed", noun, "names a key of another type than its algorithm"
        )
    return None


# -- tokens -----------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


def _json_object(part: str) -> dict[str, Any] | None:
    try:
        value = json.loads(
            b64url_decode(part).decode("utf-8"),
            parse_constant=_no_constants,
            object_pairs_hook=_no_duplicates,
        )
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    """A JSON number as a float; ``None`` for anything else, booleans, and numbers no
    float holds (an integer of 400 digits: ``OverflowError``, not a 500)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class _Parts:
    header: Mapping[str, Any]
    payload: str
    signing_input: bytes
    signature: bytes


def _split(token: Any, noun: str) -> _Parts:
    def malformed(why: str) -> ApiError:
        return _refused("invalid_id_token", noun, why)

    if not isinstance(token, str) or not token:
        raise malformed("is missing")
    if len(token) > MAX_TOKEN_BYTES or not token.isascii():
        raise malformed("is not a JWT (over 16 KiB, or not ASCII)")
    pieces = token.split(".")
    if len(pieces) != 3:
        raise malformed("is not a JWT (three base64url parts)")
    header = _json_object(pieces[0])
    if header is None:
        raise malformed("has a header that is not a JSON object")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in SUPPORTED_ALGORITHMS:
        raise _refused("id_token_algorithm_not_allowed", noun, "uses an algorithm not allowed")
    if "crit" in header:
        raise malformed("has critical header parameters, none of which are understood")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise malformed("is not of type JWT")
    if "kid" in header and not isinstance(header["kid"], str):
        raise malformed("has a key id that is not a string")
    try:
        signature = b64url_decode(pieces[2])
    except (ValueError, binascii.Error):
        raise malformed("has a signature that is not base64url") from None
    if not signature:
        raise malformed("is not signed")
    return _Parts(header, pieces[1], f"{pieces[0]}.{pieces[1]}".encode("ascii"), signature)


class IdTokenVerifier:
    """Verifies a token against the issuers a caller trusts (the key's configuration)."""

    def __init__(
        self, jwks: JwksCache, crypto: SignatureVerifier, clock: Callable[[], float]
    ) -> None:
        self._jwks = jwks
        self._crypto = crypto
        self._clock = clock

    async def verify(
        self, token: str, issuers: Sequence[TrustedIssuer], *, what: str = "id_token"
    ) -> VerifiedToken:
        """The verified token, or an :class:`~fluxgate.errors.ApiError` with one of
        :data:`CODES`. ``what`` is ``"id_token"`` or ``"app_check"``: it only changes how the
        messages name the token."""
        noun = _noun(what)
        parts = _split(token, noun)
        alg, kid = parts.header["alg"], parts.header.get("kid")
        claims = _json_object(parts.payload)
        if claims is None:
            raise _refused("invalid_id_token", noun, "has a payload that is not a JSON object")
        iss = claims.get("iss")
        trusted = next((i for i in issuers if isinstance(iss, str) and i.names(iss)), None)
        if trusted is None:
            raise _refused("untrusted_issuer", noun, "is not from a trusted issuer")
        if alg not in trusted.algorithms:
            raise _refused(
                "id_token_algorithm_not_allowed",
                noun,
                f"uses an algorithm not allowed for {trusted.issuer}",
            )
        jwk = await self._jwks.key(trusted.jwks_url, kid, alg, what=what)
        if not await self._signed(alg, jwk, parts):
            log.info("%s refused: bad signature (issuer %s)", noun, trusted.issuer)
            raise _refused("id_token_signature_invalid", noun, "has an invalid signature")
        try:
            subject = _check_claims(claims, trusted, self._clock(), noun)
        except ApiError as refusal:
            sub = claims.get("sub")
            who = subject_hash(trusted.issuer, sub) if isinstance(sub, str) else "-"
            log.info(
                "%s refused: %s (issuer %s, subject %s)", noun, refusal.code, trusted.issuer, who
            )
            raise
        return VerifiedToken(trusted, subject, MappingProxyType(claims), kid, alg)

    async def _signed(self, alg: str, jwk: Mapping[str, Any], parts: _Parts) -> bool:
        if alg == "ES256" and len(parts.signature) != 64:  # JWS: raw r || s, 32 bytes each
            return False
        try:
            return await self._crypto.verify(alg, jwk, parts.signing_input, parts.signature)
        except ValueError:  # a key the runtime cannot use (a point not on the curve, say)
            return False


def _check_claims(claims: Mapping[str, Any], trusted: TrustedIssuer, now: float, noun: str) -> str:
    """``sub`` when the claims hold at ``now``; the refusal otherwise."""

    def malformed(why: str) -> ApiError:
        return _refused("invalid_id_token", noun, why)

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > MAX_SUBJECT_LENGTH:
        raise malformed("has no valid subject (sub)")
    exp, iat, nbf = (_number(claims.get(name)) for name in ("exp", "iat", "nbf"))
    if exp is None or iat is None or (nbf is None and "nbf" in claims):
        raise malformed("has no valid exp, iat or nbf claim (a number of seconds)")
    if now >= exp + CLOCK_SKEW_SECONDS:
        raise _refused("id_token_expired", noun, "has expired")
    if (nbf is not None and now + CLOCK_SKEW_SECONDS < nbf) or now + CLOCK_SKEW_SECONDS < iat:
        raise _refused("id_token_not_yet_valid", noun, "is not valid yet")
    limit = trusted.max_age_seconds
    if limit is not None and now - iat > limit + CLOCK_SKEW_SECONDS:
        raise _refused("id_token_too_old", noun, f"was issued more than {limit} seconds ago")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise malformed("has no valid audience (aud)")
    if not set(audiences) & set(trusted.audiences):
        raise _refused("id_token_audience_mismatch", noun, "is not meant for this application")
    return subject
