"""Request-rate limits: the port both runtimes implement, and the 429 a client sees.

On Workers the counter is the Rate Limiting binding (per Cloudflare location, approximate,
no remaining count); locally an in-process fixed window. Only requests that would call
the model are counted: cache hits cost one KV read and are served without touching the
limiter (the daily budget already ignores them too).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..errors import ApiError


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    period: int
    remaining: int | None  # None where the counter cannot tell (the Workers binding)
    reset: int  # seconds until the window ends (an upper bound on Workers)
    enforced: bool = True  # False: no counter exists for the rule (a missing binding)


class RateLimiter(Protocol):
    async def hit(self, name: str, limit: int, period: int, key: str) -> RateDecision: ...


def rate_limit_headers(name: str, decision: RateDecision) -> dict[str, str]:
    """IETF draft RateLimit header fields (draft-ietf-httpapi-ratelimit-headers)."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Reset": str(decision.reset),
        "RateLimit-Policy": f'{decision.limit};w={decision.period};name="{name}"',
    }
    if decision.remaining is not None:
        headers["RateLimit-Remaining"] = str(decision.remaining)
    return headers


# The name the RateLimit-* fields give an end user's own limit (the policy's
# ``user_rate_limit``), next to the key's named rules.
USER_RULE = "user"


def rate_limited(name: str, decision: RateDecision, who: str = "key") -> ApiError:
    """``429 rate_limited`` (the key's limit) or ``429 user_rate_limited`` (an end user's,
    ``who="end user"``), with ``Retry-After`` and the ``RateLimit-*`` fields of that limit."""
    headers = rate_limit_headers(name, decision)
    headers["RateLimit-Remaining"] = "0"
    headers["Retry-After"] = str(max(1, decision.reset))
    return ApiError(
        429,
        "user_rate_limited" if who == "end user" else "rate_limited",
        f"Too many requests for this {who}: the limit is {decision.limit} per "
        f"{decision.period} s. Retry after {max(1, decision.reset)} s.",
        headers=headers,
    )


# Failed authentication: a client (an IP address) that keeps presenting credentials that
# do not exist is guessing. Its failures are counted with the runtime's limiter (on
# Workers the RATE_LIMIT_AUTH_FAILURES binding, whose limit and period wrangler.toml must
# give as here); past the limit the client is refused outright for the rest of the window.
AUTH_FAILURES_RULE = "auth_failures"
AUTH_FAILURES_LIMIT = 20
AUTH_FAILURES_PERIOD = 60
GUESSES = frozenset(
    {
        "invalid_api_key",
        "invalid_token",
        "invalid_admin_token",
        # the sign-in exchange: a key id that exchanges nothing, a forged ID token
        "exchange_not_enabled",
        "id_token_signature_invalid",
    }
)


def too_many_failed_attempts(retry_after: float) -> ApiError:
    wait = max(1, math.ceil(retry_after))
    return ApiError(
        429,
        "too_many_failed_attempts",
        f"Too many failed authentication attempts from this client. Retry after {wait} s.",
        headers={"Retry-After": str(wait)},
    )


class FailedAttempts:
    """Which clients are shut out after too many failed authentication attempts.

    The count lives in the limiter (shared across isolates on Workers); the verdict is
    remembered here, in memory, so that a shut-out client's further failures are answered
    without another count. Only failures reach it (the credential is checked first, see
    :meth:`refusal`): one address is often many clients, and a valid credential from it is
    never refused, nor does it cost the throttle anything.
    """

    def __init__(self, max_clients: int = 10_000) -> None:
        self._blocked: dict[str, float] = {}
        self._max_clients = max_clients

    def check(self, client: str, now: float) -> None:
        """Raise a 429 when ``client`` is shut out."""
        until = self._blocked.get(client)
        if until is None:
            return
        if until <= now:
            del self._blocked[client]
            return
        raise too_many_failed_attempts(until - now)

    async def failed(self, limiter: RateLimiter, client: str, now: float) -> ApiError | None:
        """Count one failure; the 429 to answer instead once ``client`` is over the limit."""
        decision = await limiter.hit(
            AUTH_FAILURES_RULE, AUTH_FAILURES_LIMIT, AUTH_FAILURES_PERIOD, client
        )
        if decision.allowed:
            return None
        if len(self._blocked) >= self._max_clients:
            self._blocked = {c: t for c, t in self._blocked.items() if t > now}
            if len(self._blocked) >= self._max_clients:
                self._blocked.clear()
        self._blocked[client] = now + decision.reset
        return too_many_failed_attempts(decision.reset)

    async def refusal(
        self, error: ApiError, *, client: str, limiter: RateLimiter, clock: Callable[[], float]
    ) -> ApiError:
        """What a request whose credential failed to check out (``error``) is answered:
        ``error`` itself, or ``429 too_many_failed_attempts`` once its client is over the
        limit. Only failures that look like guesses (a credential that does not exist) count.

        The credential is checked *first*, by the caller: one that checks out always passes,
        however many failures its address has made, since one address is often many clients
        (a carrier NAT, the servers behind a proxy). A valid request so costs the throttle
        nothing. Only failures meet the throttle: a client already shut out gets the 429
        (with the time left) without another count; the others are counted. Guessing stays
        hopeless rather than merely slow: API keys carry 256 random bits, client tokens an
        HMAC and the admin token at least 32 characters; what the throttle bounds is what a
        guesser costs (limiter calls, audit lines) and the 429 tells it to stop.

        ``client``: who sent the request (the peer address locally, ``CF-Connecting-IP`` on
        Workers). Requests without credentials are not the throttle's: callers let their
        refusal through unasked.
        """
        if error.code not in GUESSES:
            return error
        self.check(client, clock())  # already shut out: the 429, not counted again
        blocked = await self.failed(limiter, client, clock())
        return error if blocked is None else blocked
