"""Request coalescing: concurrent identical generations share one model call.

Identical means the same cache key. The first request for a key is the leader and runs
the generation; requests for the same key that arrive while it runs wait for its result
instead of paying again. A failure of the work (the model's, the store's) reaches every
waiter and nothing is cached (the leader's pipeline caches only successes). A failure that
is the leader's own (its rate limit, its budget: :class:`NotShared`) reaches the leader
only; the waiters then run again for themselves, one of them as the new leader. Locally
this is a map of in-flight futures; on Workers, where a request must not resume from
another request's future, it is a Durable Object per cache key
(``fluxgate.edge.bindings.coalescer_object``).
:class:`PollingCoalescer` coalesces within one process on either runtime without that
hazard (variant downloads, output moderation of cache hits).

Pydantic-free: the Workers adapter builds on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class NotShared(Exception):
    """Raised by ``work`` for a failure that belongs to the leader alone (``error``).

    The leader's caller receives ``error`` itself; waiters receive nothing from this run
    and try again. Another tenant's ``budget_exceeded``, with that tenant's spend in its
    message, must never be an answer to someone else's request.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class Coalescer(Protocol):
    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``work`` once per concurrent ``key``; return its result and whether this
        caller was the one that ran it."""
        ...


class InflightCoalescer:
    """Coalescing within one event loop."""

    def __init__(self) -> None:
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        while True:
            pending = self._inflight.get(key)
            if pending is None:
                return await self._lead(key, work), True
            try:
                # shield: a waiter that gives up (client went away) must not cancel the leader
                return await asyncio.shield(pending), False
            except NotShared:
                continue  # the leader's own refusal: run again, perhaps as the leader

    async def _lead(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await work()
        except NotShared as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: with no waiters it is not an "unhandled" error
            raise exc.error from exc.error.__cause__
        except BaseException as exc:
            # A leader that was cancelled (its client went away) leaves nothing to share.
            future.set_exception(exc if isinstance(exc, Exception) else NotShared(exc))
            future.exception()
            raise
        else:
            future.set_result(result)
            return result
        finally:
            del self._inflight[key]


class NoCoalescing:
    """Every request runs its own generation (the baseline the benchmark compares to)."""

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        try:
            return await work(), True
        except NotShared as exc:
            raise exc.error from exc.error.__cause__


@dataclass
class _Flight:
    """One run of ``work`` that others may wait for: its outcome once ``done``."""

    done: bool = False
    result: Any = None
    error: BaseException | None = None


class PollingCoalescer:
    """Coalescing within one process whose waiters never resume from another request.

    On workerd a waiter resumed by a future that another request resolves continues in
    that request's I/O context (see :mod:`fluxgate.edge.bindings.coalescer_object`). Here the
    leader only
    writes its outcome into a table, and each waiter looks at it on timers of its own
    (every ``poll_seconds``), so it always resumes in its own request. For work that takes
    far longer than a poll (a paid model call, an image transformation), the delay is
    small. Safe on CPython too. A leader that never reports (its isolate torn down mid-way)
    is waited for ``wait_seconds`` at most; then the waiter runs the work itself.
    """

    def __init__(self, poll_seconds: float = 0.05, wait_seconds: float = 120.0) -> None:
        self._poll = poll_seconds
        self._wait = wait_seconds
        self._inflight: dict[str, _Flight] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        waited = 0.0
        while True:
            flight = self._inflight.get(key)
            if flight is None:
                return await self._lead(key, work), True
            while not flight.done and waited < self._wait:
                await asyncio.sleep(self._poll)
                waited += self._poll
            if not flight.done:  # the leader never reported: run alone
                try:
                    return await work(), True
                except NotShared as exc:
                    raise exc.error from exc.error.__cause__
            if isinstance(flight.error, NotShared):
                continue  # the leader's own refusal: run again, perhaps as the leader
            if flight.error is not None:
                raise flight.error
            result: T = flight.result
            return result, False

    async def _lead(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        flight = _Flight()
        self._inflight[key] = flight
        try:
            result = await work()
        except NotShared as exc:
            flight.error = exc
            raise exc.error from exc.error.__cause__
        except BaseException as exc:
            # A leader that was cancelled (its client went away) leaves nothing to share.
            flight.error = exc if isinstance(exc, Exception) else NotShared(exc)
            raise
        else:
            flight.result = result
            return result
        finally:
            flight.done = True
            if self._inflight.get(key) is flight:
                del self._inflight[key]
