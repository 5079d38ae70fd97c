"""Request-rate limits: the port both runtimes implement, and the 429 a client sees.

On Workers the counter is the Rate Limiting binding (per Cloudflare location, approximate,
no remaining count); locally an in-process fixed window. Only requests that would call
the model are counted: cache hits cost one KV read and are served without touching the
limiter (the daily budget already ignores them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .errors import ApiError


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    period: int
    remaining: int | None  # None where the counter cannot tell (the Workers binding)
    reset: int  # seconds until the window ends (an upper bound on Workers)


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


def rate_limited(name: str, decision: RateDecision, who: str) -> ApiError:
    headers = rate_limit_headers(name, decision)
    headers["RateLimit-Remaining"] = "0"
    headers["Retry-After"] = str(max(1, decision.reset))
    return ApiError(
        429,
        "rate_limited",
        f"Too many generations for this {who}: the limit is {decision.limit} per "
        f"{decision.period} s. Retry after {max(1, decision.reset)} s.",
        headers=headers,
    )
