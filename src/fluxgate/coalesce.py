"""Request coalescing: concurrent identical generations share one model call.

Identical means the same cache key. The first request for a key is the leader and runs
the generation; requests for the same key that arrive while it runs wait for its result
instead of paying again. A failure reaches every waiter and nothing is cached (the
leader's pipeline caches only successes). Within a process (or Workers isolate) this is
a map of in-flight futures; across isolates the Workers runtime adds a Durable Object per
cache key (``fluxgate.edge.coalesce``).

Pydantic-free: the Workers adapter builds on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class Coalescer(Protocol):
    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``work`` once per concurrent ``key``; return its result and whether this
        caller was the one that ran it."""
        ...


class InflightCoalescer(Generic[T]):
    """Coalescing within one event loop."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[T]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        pending = self._inflight.get(key)
        if pending is not None:
            # shield: a waiter that gives up (client went away) must not cancel the leader
            return await asyncio.shield(pending), False
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await work()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: with no waiters it is not an "unhandled" error
            raise
        else:
            future.set_result(result)
            return result, True
        finally:
            del self._inflight[key]


class NoCoalescing:
    """Every request runs its own generation (the baseline the benchmark compares to)."""

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        return await work(), True
