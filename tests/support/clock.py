"""The runtime's wall clock, as a test reads and moves it.

In process it is :class:`Clock`, shared by the gateway and the local stores, which a test
moves by hand; on workerd it is :class:`WorkerdClock`, real time, which cannot be moved from
outside: a test that moves it by more than a second or two runs locally
(``runtimes("local", reason=MOVES_CLOCK)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import pytest

from .runtimes import on_worker


class ClockDouble(Protocol):
    """Now, in seconds since the epoch, and a way to let time pass."""

    def __call__(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class Clock:
    """Wall time that tests move by hand; shared by the gateway and the local KV."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WorkerdClock:
    """workerd's wall clock, read as the Worker reads it. It cannot be moved, only waited
    for: ``advance`` lets a second or two really pass (a test that needs more runs
    locally, ``MOVES_CLOCK``)."""

    def __call__(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        if seconds > 2:
            raise ValueError(
                f"workerd's clock cannot be moved by {seconds} s: wait, or run locally"
            )
        time.sleep(seconds)


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> ClockDouble:
    """The runtime's wall clock; in process a test may move it (``advance``), on workerd
    it is real time."""
    if on_worker(request):
        return WorkerdClock()
    return Clock()


def just_now(clock: Callable[[], float], plus: int = 0) -> range:
    """The whole seconds a timestamp the server set just now (plus ``plus``) may hold:
    on workerd the clock runs in real time, so a second may tick between the
    server's reading and the test's."""
    now = int(clock())
    return range(now - 1 + plus, now + 1 + plus)
