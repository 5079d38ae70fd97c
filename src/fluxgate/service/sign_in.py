"""Sign-in token exchange and App Check: an app with no server of its own gets client
tokens for its signed-in users, and can be required to be the genuine app.

``POST /v1/tokens/exchange`` (RFC 8693 in spirit): the app sends the ID token its sign-in
gave it and the id of the key whose users it signs in (public: it names the key, it does
not unlock it). The token is verified against the issuers that key trusts
(:mod:`fluxgate.access.id_tokens`: one set of rules on both runtimes) and a client token is
answered for the end user the configured claim names. App Check, when the key requires it,
is verified the same way, against App Check's keys, on the exchange and/or on every request
a client token of the key makes (:meth:`SignIn.check_request`).

Nothing of a token is logged but its issuer and a hash of its subject.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from ..access.audit import audit
from ..access.auth import KeyRecord, KeyStore, Principal
from ..access.id_tokens import IdTokenVerifier, TrustedIssuer, subject_hash
from ..access.sign_in_config import AppCheckConfig, SignInConfig
from ..access.tokens import SUBJECT_MAX_LENGTH, SUBJECT_PATTERN, ClientToken, mint
from ..delivery.signing import UrlSigner
from ..errors import ApiError

log = logging.getLogger("fluxgate.sign_in")
_SUBJECT = re.compile(SUBJECT_PATTERN)
# Verified App Check tokens, remembered until they expire so that a client token's every
# request does not verify the same one again (bounded: cleared when full).
MAX_REMEMBERED = 10_000
MAX_CONFIGS = 256  # keys' sign-in configurations kept parsed


def exchange_not_enabled() -> ApiError:
    """One answer for a key that does not exist, is revoked or has expired, or exchanges
    nothing: which of these it is is none of an unauthenticated caller's business."""
    return ApiError(
        403,
        "exchange_not_enabled",
        "This key does not exchange sign-ins for client tokens.",
        param="key_id",
    )


def app_check_failed(why: str) -> ApiError:
    return ApiError(
        401,
        "app_check_failed",
        f"Firebase App Check: {why}. Send a valid App Check token in X-Firebase-AppCheck.",
    )


@dataclass(frozen=True)
class Exchanged:
    """A client token answered for a sign-in."""

    token: str
    claims: ClientToken


class SignIn:
    """The exchange and App Check, over the key store and the ID-token verifier (``None``
    where the runtime has none: the exchange is then ``501 exchange_unavailable``)."""

    def __init__(
        self,
        keys: KeyStore,
        verifier: IdTokenVerifier | None,
        signer: UrlSigner,
        *,
        audience: str,
        max_ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._verifier = verifier
        self._signer = signer
        self._audience = audience
        self._max_ttl = max_ttl_seconds
        self._clock = clock
        self._configs: dict[str, SignInConfig] = {}
        self._app_checks: dict[str, tuple[float, str]] = {}  # memo -> (until, app id)

    async def exchange(
        self, key_id: str, subject_token: str, app_check: str | None, scope: str | None
    ) -> Exchanged:
        """A client token for the end user ``subject_token`` (an ID token) names, under the
        key ``key_id``'s sign-in configuration; raises the refusal's :class:`ApiError`."""
        record = await self._keys.get(key_id) if key_id.startswith("key_") else None
        config = None if record is None else self._config(record)
        if record is None or config is None or not _usable(record, self._clock()):
            raise exchange_not_enabled()
        if config.app_check is not None and config.app_check.on_exchange:
            await self._check_app(config.app_check, app_check)
        verifier = self._require_verifier()
        verified = await verifier.verify(subject_token, [c.trusted() for c in config.issuers])
        issuer = next(c for c in config.issuers if c.trusted() == verified.issuer)
        user = _end_user(verified.claims, issuer.user_prefix, config)
        scopes = _scopes(config, scope)
        now = int(self._clock())
        claims = ClientToken(
            record.id,
            user,
            self._audience,
            scopes,
            now,
            now + min(config.token_ttl_seconds, self._max_ttl),
            exchanged=True,
        )
        audit(
            "token.exchange",
            key_id=record.id,
            issuer=verified.issuer.issuer,
            subject_hash=subject_hash(verified.issuer.issuer, verified.subject),
            ttl=claims.expires_at - now,
        )
        return Exchanged(mint(self._signer, claims), claims)

    async def check_request(self, principal: Principal, app_check: str | None) -> None:
        """A client token's request, when its key requires App Check on every request:
        ``401 app_check_failed`` without a valid App Check token."""
        if not principal.via_token or not principal.key.sign_in:
            return
        config = self._config(principal.key)
        if config is not None and config.app_check is not None and config.app_check.on_requests:
            await self._check_app(config.app_check, app_check)

    def _config(self, record: KeyRecord) -> SignInConfig | None:
        """The key's stored configuration, parsed once per distinct value. One that the
        current rules refuse (stored under older ones) raises ``503 server_misconfigured``:
        neither an exchange nor App Check on requests may pass on a configuration that
        cannot be read, and the admin must set it again."""
        if not record.sign_in:
            return None
        memo = json.dumps(record.sign_in, sort_keys=True)
        found = self._configs.get(memo)
        if found is None:
            try:
                found = SignInConfig.model_validate(record.sign_in)
            except ValidationError:
                log.error("key %s: its stored sign_in no longer validates", record.id)
                raise ApiError(
                    503,
                    "server_misconfigured",
                    "This key's sign-in configuration cannot be read; the operator must set "
                    "it again.",
                ) from None
            if len(self._configs) >= MAX_CONFIGS:
                self._configs.clear()
            self._configs[memo] = found
        return found

    def _require_verifier(self) -> IdTokenVerifier:
        if self._verifier is None:
            raise ApiError(
                501, "exchange_unavailable", "Sign-in token exchange is not configured here."
            )
        return self._verifier

    async def _check_app(self, config: AppCheckConfig, token: str | None) -> None:
        """Verify an App Check token against ``config``. A verified token is remembered,
        with the app it names, under everything its verification depended on (issuer,
        audience, JWKS URL), so that it stands in for no other key's App Check; the
        key's ``app_ids`` are checked on every use."""
        if not token:
            raise app_check_failed("the request has no App Check token")
        now = self._clock()
        trusted = config.trusted()
        memo = hashlib.sha256(
            "\n".join((trusted.issuer, *trusted.audiences, trusted.jwks_url, token)).encode()
        ).hexdigest()
        remembered = self._app_checks.get(memo)
        if remembered is not None and remembered[0] > now:
            app = remembered[1]
        else:
            app = await self._verified_app(trusted, token, memo, now)
        if config.app_ids and app not in config.app_ids:
            raise app_check_failed("the token is for an app this key does not allow")

    async def _verified_app(self, trusted: TrustedIssuer, token: str, memo: str, now: float) -> str:
        try:
            verified = await self._require_verifier().verify(token, [trusted], what="app_check")
        except ApiError as error:
            if error.status >= 500:
                raise
            raise app_check_failed(f"the token was refused ({error.code})") from None
        if len(self._app_checks) >= MAX_REMEMBERED:
            self._app_checks = {m: t for m, t in self._app_checks.items() if t[0] > now}
            if len(self._app_checks) >= MAX_REMEMBERED:
                self._app_checks.clear()
        self._app_checks[memo] = (float(verified.claims["exp"]), verified.subject)
        return verified.subject


def _usable(record: KeyRecord, now: float) -> bool:
    return not record.revoked and (record.expires_at is None or record.expires_at > now)


def _end_user(claims: Mapping[str, Any], prefix: str, config: SignInConfig) -> str:
    """The end-user id: the configured claim's value, prefixed; it must be an id the API
    accepts as an end user's (cache keys, records and rate-limit keys use it unescaped).
    An ``email`` counts only when the issuer says it verified it (``email_verified``):
    many providers let a user type any address, which would be someone else's end user."""
    value = claims.get(config.user_claim)
    verified = claims.get("email_verified")
    if config.user_claim == "email" and not (verified is True or verified == "true"):
        value = None  # JSON true (Apple sends the string "true"), never 1
    user = f"{prefix}{value}" if isinstance(value, str) and value else ""
    if not user or len(user) > SUBJECT_MAX_LENGTH or not _SUBJECT.fullmatch(user):
        raise ApiError(
            401,
            "invalid_id_token",
            f"The ID token's '{config.user_claim}' claim is missing or is not an end-user id "
            f"(at most {SUBJECT_MAX_LENGTH} of A-Z a-z 0-9 . _ : @ | -).",
        )
    return user


def _scopes(config: SignInConfig, scope: str | None) -> tuple[str, ...]:
    """The scopes asked (RFC 8693's space-separated ``scope``) within the configured ones."""
    allowed = tuple(config.scopes)
    if scope is None:
        return allowed
    asked = tuple(dict.fromkeys(s for s in scope.split(" ") if s))  # RFC 6749: spaces only
    if not asked or any(s not in allowed for s in asked):
        raise ApiError(
            400,
            "invalid_scope",
            f"scope must be some of: {' '.join(allowed)}.",
            param="scope",
        )
    return asked
