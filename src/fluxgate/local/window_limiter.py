"""The local peer of the Rate Limiting binding: fixed windows counted in this process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..access.rate_limits import RateDecision


class WindowRateLimiter:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[str, str, int], int] = {}

    async def hit(self, name: str, limit: int, period: int, key: str) -> RateDecision:
        now = self._clock()
        window = int(now // period)
        reset = max(1, math.ceil((window + 1) * period - now))
        slot = (name, key, window)
        count = self._counts.get(slot, 0)
        if len(self._counts) > 100_000:  # forget finished windows
            self._counts = {k: v for k, v in self._counts.items() if k[2] >= window}
        if count >= limit:
            return RateDecision(False, limit, period, 0, reset)
        self._counts[slot] = count + 1
        return RateDecision(True, limit, period, limit - count - 1, reset)
