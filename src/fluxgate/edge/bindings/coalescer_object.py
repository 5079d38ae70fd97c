"""Coalescing on Workers: one Durable Object per cache key, for every concurrent request.

Requests for the same key can land on any isolate, in any location. ``CoalescerObject``
(one per cache key, by ``idFromName``) elects the first caller leader;
later callers wait inside the object until the leader reports the generation record (or
the error of the work), then answer like a cache hit. A leader refused for itself (its
rate limit, its budget) reports ``retry``, and the
waiters elect a new leader among themselves: no caller receives another's refusal.

Trade-off: a miss pays one Durable Object round trip (the object lives in one location,
so far-away callers pay the distance), in exchange for exactly one model call (~$0.04 and
seconds) per concurrent key worldwide. Hits never reach the object. If a leader dies
without reporting, waiters give up after ``wait_seconds`` and generate themselves.

Requests in the same isolate go through the object too, not through the in-process
:class:`~fluxgate.model.coalesce.InflightCoalescer`: a waiter resumed by a Python future that
another request resolves continues in that request's I/O context on workerd, and the
``Response`` it then builds belongs to the other request ("Cannot perform I/O on behalf of
a different request"; the waiter's client got a 500). A waiter must resume from a promise
of its own request: the answer of its own call to the object is one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from pyodide.ffi import to_js
from workers import DurableObject

from ...errors import ApiError
from ...model.coalesce import Coalescing, Flight, RunAlone
from ..ffi import py_value, unwrap

log = logging.getLogger("fluxgate.edge.coalesce")

WAIT_SECONDS = 120.0


class CoalescerObject(DurableObject):
    """Leader election and result hand-off for one cache key (state in memory only)."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._pending: asyncio.Future[list[Any]] | None = None

    async def join(self, wait_seconds: float = WAIT_SECONDS) -> list[Any]:
        """``["leader"]``, or the leader's ``["done", record]`` / ``["failed", error]`` /
        ``["retry"]`` (join again), or ``["timeout"]``."""
        pending = self._pending
        if pending is None or pending.done():
            self._pending = asyncio.get_running_loop().create_future()
            return ["leader"]
        try:
            return await asyncio.wait_for(asyncio.shield(pending), wait_seconds)
        except TimeoutError:
            return ["timeout"]

    async def finish(self, outcome: list[Any]) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.set_result(list(outcome))


class _Shared:
    """A caller's place in the key's flight, as the object told it."""

    def __init__(
        self,
        stub: Any,
        role: list[Any],
        encode: Callable[[Any], str],
        decode: Callable[[str], Any],
    ) -> None:
        self._stub = stub
        self._role = role
        self._encode = encode
        self._decode = decode

    @property
    def leads(self) -> bool:
        return bool(self._role[0] == "leader")

    async def outcome(self) -> Any:
        kind = self._role[0]
        if kind == "done":
            return self._decode(self._role[1])
        if kind == "failed":
            error = json.loads(self._role[1])
            raise ApiError(
                error["status"],
                error["code"],
                error["message"],
                headers=error.get("headers") or {},
                **(error.get("extra") or {}),
            )
        if kind != "timeout":
            raise RuntimeError(f"a follower's outcome asked of a {kind!r} place")
        log.warning("coalescing leader did not report in time; generating")
        raise RunAlone

    async def land(self, result: Any) -> None:
        await self._stub.finish(to_js(["done", self._encode(result)]))

    async def fail(self, error: BaseException | None) -> None:
        if not isinstance(error, ApiError):
            # The leader's own refusal, a bug or a cancellation: nothing to share, and
            # nothing that names the leader; the waiters run for themselves.
            await self._stub.finish(to_js(["retry"]))
            return
        failure = {  # a failure of the work itself: every waiter gets it
            "status": error.status,
            "code": error.code,
            "message": error.message,
            "headers": error.headers,
            "extra": error.extra,  # output_rejected's categories, say
        }
        await self._stub.finish(to_js(["failed", json.dumps(failure)]))


class DurableCoalescer(Coalescing):
    """The gateway's coalescer on Workers: the key's object, for every caller.

    ``encode``/``decode`` turn what the leader lands into the JSON the object passes on
    (a generation's record, never image bytes).
    """

    def __init__(
        self,
        namespace: Any,
        *,
        encode: Callable[[Any], str],
        decode: Callable[[str], Any],
        wait_seconds: float = WAIT_SECONDS,
    ) -> None:
        self._namespace = unwrap(namespace)
        self._encode = encode
        self._decode = decode
        self._wait = wait_seconds

    async def join(self, key: str) -> Flight:
        stub = self._namespace.get(self._namespace.idFromName(key))
        role = py_value(await stub.join(self._wait))
        while role[0] == "retry":  # the leader was refused for itself: elect another
            role = py_value(await stub.join(self._wait))
        return _Shared(stub, role, self._encode, self._decode)
