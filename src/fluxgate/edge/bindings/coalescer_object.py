"""Coalescing on Workers: one Durable Object per cache key, for every concurrent request.

Requests for the same key can land on any isolate, in any location. ``CoalescerObject``
(one per cache key, by ``idFromName``) elects the first caller leader;
later callers wait inside the object until the leader reports the generation record (or
the error of the work), then answer like a cache hit. A leader refused for itself (its
rate limit, its budget: :class:`~fluxgate.model.coalesce.NotShared`) reports ``retry``, and the
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
from collections.abc import Awaitable, Callable
from typing import Any

from pyodide.ffi import to_js
from workers import DurableObject

from ...errors import ApiError
from ...model.coalesce import NotShared
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


class DurableCoalescer:
    """The gateway's coalescer on Workers: the key's object, for every caller.

    ``encode``/``decode`` turn the pipeline's outcome into the JSON the object passes on
    (the record, never image bytes).
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

    async def run(self, key: str, work: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        stub = self._namespace.get(self._namespace.idFromName(key))
        role = py_value(await stub.join(self._wait))
        while role[0] == "retry":  # the leader was refused for itself: elect another
            role = py_value(await stub.join(self._wait))
        if role[0] == "done":
            return self._decode(role[1]), False
        if role[0] == "failed":
            error = json.loads(role[1])
            raise ApiError(
                error["status"],
                error["code"],
                error["message"],
                headers=error.get("headers") or {},
                **(error.get("extra") or {}),
            )
        if role[0] == "timeout":
            log.warning("coalescing leader did not report in time; generating")
            try:
                return await work(), True
            except NotShared as exc:  # its own refusal, as a leader's below
                raise exc.error from exc.error.__cause__
        try:
            result = await work()
        except ApiError as exc:  # a failure of the work itself: every waiter gets it
            failure = {
                "status": exc.status,
                "code": exc.code,
                "message": exc.message,
                "headers": exc.headers,
                "extra": exc.extra,  # output_rejected's categories, say
            }
            await stub.finish(to_js(["failed", json.dumps(failure)]))
            raise
        except NotShared as exc:  # the leader's own refusal: its caller gets the error
            await stub.finish(to_js(["retry"]))
            raise exc.error from exc.error.__cause__
        except BaseException:
            # A bug or a cancellation: nothing to share, and nothing that names the
            # leader; the waiters run for themselves.
            await stub.finish(to_js(["retry"]))
            raise
        await stub.finish(to_js(["done", self._encode(result)]))
        return result, True
