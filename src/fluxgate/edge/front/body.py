"""Request bodies on Workers are size-checked before the ASGI bridge buffers them.

The Workers SDK's ``workers.asgi`` reads the whole body into memory before the app runs, so
the app's own streaming cap (``request_body.read_capped``) would come too late: a request
declaring 50 MB would be read to its end first. Here a declared ``Content-Length`` over the
limit is refused from the header alone, and a body without one (chunked) is counted chunk
by chunk as JS buffers (never converted to Python bytes) and refused as soon as it passes
the limit.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import Any

from js import Array, Blob
from js import Request as JsRequest
from workers import Request

from ...api.request_body import body_incomplete, declared_length, payload_too_large
from ..ffi import is_nullish, js_object, js_text

log = logging.getLogger("fluxgate.edge.body")


# How much of a refused body is taken in before the 413, at most: four times the limit
# and never less than a MiB, for two seconds (a client that sends on gets its 413 without
# the rest). The floor is for the small limits (64 KiB where the body is the credential):
# an 800 KB body there was answered mid-upload, and about one in a few hundred lost the
# connection behind Miniflare's entry Worker (a 500 for its 413).
DRAIN_LIMITS = 4
DRAIN_MIN_BYTES = 1 << 20
DRAIN_SECONDS = 2.0


def _drain_budget(limit: int) -> int:
    return max(DRAIN_LIMITS * limit, DRAIN_MIN_BYTES)


async def _take(reader: Any, budget: int) -> None:
    taken = 0
    while taken <= budget:
        step = await reader.read()
        if step.done:
            return
        taken += int(step.value.byteLength)


async def _drain(reader: Any, budget: int) -> None:
    """Take in the rest of a body being refused (up to ``budget`` bytes, for
    :data:`DRAIN_SECONDS`), then cancel its stream. Answered while the client was still
    sending, the connection was lost now and then instead (about one in twenty 160 KB
    chunked bodies over a 64 KB limit, behind Miniflare's entry Worker; declared ones now
    and then under load), and the client got a 500 or a cut answer for its 413. The bytes
    stay in JS; a body declared or sent past the budget is not read to its end."""
    with suppress(Exception):  # the 413 stands however the rest of the body went
        await asyncio.wait_for(_take(reader, budget), DRAIN_SECONDS)
    with suppress(Exception):
        await reader.cancel()


async def within_limit(request: Request, limit: int) -> Request | None:
    """The request to hand to the app (re-built when its body had to be read), or ``None``
    when its body is over ``limit`` bytes. Raises ``400 body_incomplete`` when the body's
    stream breaks off (the client disconnected)."""
    raw = request.js_object
    declared = declared_length(js_text(raw.headers.get("content-length")))
    if declared is not None and declared <= limit:
        return request
    stream = raw.body
    if is_nullish(stream):
        return request
    if declared is not None:  # refused from its header; what arrives meanwhile is taken in
        await _drain(stream.getReader(), _drain_budget(limit))
        return None
    chunks: Any = Array.new()
    size = 0
    reader = stream.getReader()
    while True:
        try:
            step = await reader.read()
        except Exception as exc:  # the client went away mid-body: not a server error
            log.info("request body broke off after %d bytes: %s", size, type(exc).__name__)
            raise body_incomplete() from exc
        if step.done:
            break
        size += int(step.value.byteLength)
        if size > limit:
            await _drain(reader, _drain_budget(limit))
            return None
        chunks.push(step.value)
    return Request(JsRequest.new(raw, js_object({"body": Blob.new(chunks)})))


class JsBody:
    """The body of a generation the Worker's fast path answers, read as the handler asks
    for it (:data:`~fluxgate.api.request_body.BodyReader`): whole, as one JS buffer,
    ``413`` past the limit, ``400 body_incomplete`` when the client goes away mid-body.
    The runtime's implementation of a port of the API layer, as the bindings are of the
    core's."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._taken = False

    async def __call__(self, limit: int) -> bytes:
        self._taken = True
        try:
            buffer = await self._raw.arrayBuffer()
        except Exception as exc:  # the client went away mid-body: not a server error
            log.info("request body broke off: %s", type(exc).__name__)
            raise body_incomplete() from exc
        if int(buffer.byteLength) > limit:
            raise payload_too_large(limit)
        return bytes(buffer.to_bytes())

    async def discard(self) -> None:
        """Take in a body the answer did not need (a refusal before it was read). Answered
        while the client is still sending it, the connection was lost now and then instead
        (about one in sixty 400 KB bodies on workerd), and the client got a 500. The bytes
        stay in JS: this costs what the ASGI bridge paid to read every body."""
        if self._taken:
            return
        with suppress(Exception):  # the client went away: nothing left to take in
            await self._raw.arrayBuffer()
