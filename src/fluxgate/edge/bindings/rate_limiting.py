"""The Workers Rate Limiting binding as the gateway's :class:`RateLimiter`.

Each named rule of the policy document is one ``[[ratelimits]]`` binding,
``RATE_LIMIT_<NAME>``, whose ``simple.limit``/``period`` must match the document. The
binding answers only ``success``: there is no remaining count, and the reset is reported
as the period (an upper bound). A missing binding is a deploy mistake: it is logged and the
request is let through, since the daily budget still caps spend.
"""

from __future__ import annotations

import logging
from typing import Any

from ...access.rate_limits import RateDecision
from ..ffi import js_object, unwrap

log = logging.getLogger("fluxgate.edge.ratelimit")


def binding_name(rule: str) -> str:
    return f"RATE_LIMIT_{rule.upper()}"


class WorkersRateLimiter:
    def __init__(self, env: Any) -> None:
        self._env = env

    async def hit(self, name: str, limit: int, period: int, key: str) -> RateDecision:
        binding = getattr(self._env, binding_name(name), None)
        if binding is None:
            log.error("no %s binding: rate limit '%s' is not enforced", binding_name(name), name)
            return RateDecision(True, limit, period, None, period, enforced=False)
        outcome = await unwrap(binding).limit(js_object({"key": key}))
        return RateDecision(bool(outcome.success), limit, period, None, period)
