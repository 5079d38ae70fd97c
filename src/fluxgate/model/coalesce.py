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

A caller *joins* the key's flight (:meth:`Coalescer.join`) and gets its place in it
(:class:`Flight`): the leader runs the work itself and reports how it ended
(:meth:`Flight.land`, :meth:`Flight.fail`); a follower awaits that report
(:meth:`Flight.outcome`). The generator drives its flight itself, so the work it leads is
its own code, called from its own module, never handed down to be called back.
:meth:`Coalescing.run` is the same protocol for work given as a function (variants, output
moderation).

Pydantic-free: the Workers adapter builds on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class NotShared(Exception):
    """Raised by ``work`` (:meth:`Coalescing.run`) for a failure that belongs to the leader
    alone (``error``).

    The leader's caller receives ``error`` itself; waiters receive nothing from this run
    and try again. Another tenant's ``budget_exceeded``, with that tenant's spend in its
    message, must never be an answer to someone else's request.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(type(error).__name__)
        self.error = error


class Rejoin(Exception):
    """A follower's leader was refused for itself, or went away: join the key again (one
    of the followers then leads)."""


class RunAlone(Exception):
    """A follower's leader never reported in time (its isolate torn down mid-way): run the
    work unshared."""


class Flight(Protocol):
    """A caller's place among the concurrent callers of one key."""

    @property
    def leads(self) -> bool:
        """This caller runs the work, then reports with :meth:`land` or :meth:`fail`."""
        ...

    async def outcome(self) -> Any:
        """A follower's answer: the leader's result, or the failure it shared; raises
        :class:`Rejoin` or :class:`RunAlone`."""
        ...

    async def land(self, result: Any) -> None:
        """The leader's work succeeded: every follower gets ``result``."""
        ...

    async def fail(self, error: BaseException | None) -> None:
        """The leader's work failed: the followers get ``error`` (a failure of the work),
        or rejoin (``None``: the leader's own refusal, or a fault with nothing to share)."""
        ...


class Coalescer(Protocol):
    async def join(self, key: str) -> Flight:
        """This caller's place in the flight of ``key``: the leader's when none is under
        way."""
        ...

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``work`` once per concurrent ``key``; return its result and whether this
        caller was the one that ran it."""
        ...


async def _alone(work: Callable[[], Awaitable[T]]) -> T:
    try:
        return await work()
    except NotShared as exc:
        raise exc.error from exc.error.__cause__


class Coalescing:
    """:meth:`run` over :meth:`join`, for every coalescer."""

    async def join(self, key: str) -> Flight:
        raise NotImplementedError

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        while True:
            flight = await self.join(key)
            if flight.leads:
                return await self._lead(flight, work), True
            try:
                result: T = await flight.outcome()
                return result, False
            except Rejoin:
                continue  # the leader's own refusal: run again, perhaps as the leader
            except RunAlone:
                return await _alone(work), True

    @staticmethod
    async def _lead(flight: Flight, work: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await work()
        except NotShared as exc:
            await flight.fail(None)
            raise exc.error from exc.error.__cause__
        except BaseException as exc:
            # A leader that was cancelled (its client went away) leaves nothing to share.
            await flight.fail(exc if isinstance(exc, Exception) else None)
            raise
        await flight.land(result)
        return result


@dataclass
class _Flight:
    """One run of the work that others may wait for: its outcome once ``done``."""

    done: bool = False
    result: Any = None
    error: BaseException | None = None  # None when done: the result stands


@dataclass
class _Place:
    """A caller's place in a :class:`_Flight`, under a coalescer within the process.
    ``wait``: how a follower waits for the flight to be done (``False``: it never was)."""

    leads: bool
    flight: _Flight
    wait: Callable[[_Flight], Awaitable[bool]]
    settled: Callable[[], None]

    async def outcome(self) -> Any:
        if not await self.wait(self.flight):
            raise RunAlone
        if self.flight.error is None:
            return self.flight.result
        if isinstance(self.flight.error, Rejoin):
            raise Rejoin
        raise self.flight.error

    async def land(self, result: Any) -> None:
        self.flight.result = result
        self._settle()

    async def fail(self, error: BaseException | None) -> None:
        self.flight.error = error if error is not None else Rejoin()
        self._settle()

    def _settle(self) -> None:
        self.flight.done = True
        self.settled()


class InflightCoalescer(Coalescing):
    """Coalescing within one event loop: followers wait on the leader's future."""

    def __init__(self) -> None:
        self._inflight: dict[str, tuple[_Flight, asyncio.Future[None]]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def join(self, key: str) -> Flight:
        pending = self._inflight.get(key)
        if pending is not None:
            flight, future = pending

            async def wait(_flight: _Flight) -> bool:
                # shield: a follower that gives up (client went away) cancels nothing
                await asyncio.shield(future)
                return True

            return _Place(False, flight, wait, lambda: None)
        flight, future = _Flight(), asyncio.get_running_loop().create_future()
        self._inflight[key] = (flight, future)

        def settled() -> None:
            del self._inflight[key]
            future.set_result(None)

        return _Place(True, flight, _never, settled)


async def _never(_flight: _Flight) -> bool:
    return False


class NoCoalescing(Coalescing):
    """Every request runs its own generation (the baseline the benchmark compares to)."""

    async def join(self, key: str) -> Flight:
        return _Place(True, _Flight(), _never, lambda: None)


class PollingCoalescer(Coalescing):
    """Coalescing within one process whose followers never resume from another request.

    On workerd a follower resumed by a future that another request resolves continues in
    that request's I/O context (see :mod:`fluxgate.edge.bindings.coalescer_object`). Here the
    leader only writes its outcome into a table, and each follower looks at it on timers of
    its own (every ``poll_seconds``), so it always resumes in its own request. For work that
    takes far longer than a poll (a paid model call, an image transformation), the delay is
    small. Safe on CPython too. A leader that never reports (its isolate torn down mid-way)
    is waited for ``wait_seconds`` at most; then the follower runs the work itself.
    """

    def __init__(self, poll_seconds: float = 0.05, wait_seconds: float = 120.0) -> None:
        self._poll = poll_seconds
        self._wait = wait_seconds
        self._inflight: dict[str, _Flight] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def _polled(self, flight: _Flight) -> bool:
        waited = 0.0
        while not flight.done and waited < self._wait:
            await asyncio.sleep(self._poll)
            waited += self._poll
        return flight.done

    async def join(self, key: str) -> Flight:
        flight = self._inflight.get(key)
        if flight is not None:
            return _Place(False, flight, self._polled, lambda: None)
        flight = self._inflight[key] = _Flight()

        def settled() -> None:
            if self._inflight.get(key) is flight:
                del self._inflight[key]

        return _Place(True, flight, _never, settled)
