"""The polling coalescer: concurrent calls for one key share one run of the work, and no
waiter ever resumes from another caller's future (what workerd forbids), so it serves
the Worker's variant downloads and output moderation as well as the local runtime's."""

from __future__ import annotations

import asyncio

import pytest

from fluxgate.errors import ApiError
from fluxgate.model.coalesce import NotShared, PollingCoalescer

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_one_run() -> None:
    coalescer, runs, gate = PollingCoalescer(poll_seconds=0.001), [], asyncio.Event()

    async def work() -> str:
        runs.append(1)
        await gate.wait()
        return "made"

    calls = [asyncio.ensure_future(coalescer.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*calls)
    assert runs == [1]
    assert sorted(results, key=lambda r: not r[1]) == [("made", True)] + [("made", False)] * 9
    assert len(coalescer) == 0


async def test_a_failure_reaches_every_waiter_and_the_next_call_runs_again() -> None:
    coalescer, runs = PollingCoalescer(poll_seconds=0.001), []

    async def work() -> str:
        runs.append(1)
        await asyncio.sleep(0.01)
        raise ApiError(502, "variant_failed", "no")

    answers = await asyncio.gather(
        *[coalescer.run("k", work) for _ in range(5)], return_exceptions=True
    )
    assert {type(a) for a in answers} == {ApiError} and runs == [1]

    async def works() -> str:
        return "made"

    assert await coalescer.run("k", works) == ("made", True)


async def test_a_leaders_own_refusal_is_not_shared() -> None:
    """``NotShared``: the leader's caller gets its own error; the waiters run for
    themselves, one of them as the new leader."""
    coalescer, runs = PollingCoalescer(poll_seconds=0.001), []

    async def work() -> str:
        runs.append(1)
        await asyncio.sleep(0.01)
        if len(runs) == 1:
            raise NotShared(ApiError(429, "rate_limited", "the leader's own"))
        return "made"

    answers = await asyncio.gather(
        *[coalescer.run("k", work) for _ in range(4)], return_exceptions=True
    )
    refused = [a for a in answers if isinstance(a, ApiError)]
    assert [a.code for a in refused] == ["rate_limited"]
    assert sorted(a for a in answers if isinstance(a, tuple)) == [
        ("made", False),
        ("made", False),
        ("made", True),
    ]
    assert runs == [1, 1]


async def test_a_leader_that_never_reports_is_not_waited_for_forever() -> None:
    coalescer = PollingCoalescer(poll_seconds=0.001, wait_seconds=0.05)
    never = asyncio.Event()

    async def stuck() -> str:
        await never.wait()
        return "late"

    async def work() -> str:
        return "alone"

    leader = asyncio.ensure_future(coalescer.run("k", stuck))
    await asyncio.sleep(0)
    assert await coalescer.run("k", work) == ("alone", True)
    leader.cancel()
