"""Request bodies on Workers are size-checked before the ASGI bridge buffers them.

The Workers SDK's ``workers.asgi`` reads the whole body into memory before the app runs, so
the app's own streaming cap (``request_body.read_capped``) would come too late: a request
declaring 50 MB would be read to its end first. Here a declared ``Content-Length`` over the
limit is refused from the header alone, and a body without one (chunked) is counted chunk
by chunk as JS buffers (never converted to Python bytes) and refused as soon as it passes
the limit.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from typing import Any

from js import Array, Blob
from js import Request as JsRequest
from workers import Request

from ...api.request_body import declared_length
from ...errors import ApiError
from ..ffi import is_nullish, js_object, js_text

log = logging.getLogger("fluxgate.edge.body")

BODY_INCOMPLETE = ApiError(
    400, "body_incomplete", "The request body ended before it was complete; send it again."
)


async def within_limit(request: Request, limit: int) -> Request | None:
    """The request to hand to the app (re-built when its body had to be read), or ``None``
    when its body is over ``limit`` bytes. Raises ``400 body_incomplete`` when the body's
    stream breaks off (the client disconnected)."""
    raw = request.js_object
    declared = declared_length(js_text(raw.headers.get("content-length")))
    if declared is not None:
        return request if declared <= limit else None
    stream = raw.body
    if is_nullish(stream):
        return request
    chunks: Any = Array.new()
    size = 0
    reader = stream.getReader()
    while True:
        try:
            step = await reader.read()
        except Exception as exc:  # the client went away mid-body: not a server error
            log.info("request body broke off after %d bytes: %s", size, type(exc).__name__)
            raise BODY_INCOMPLETE from exc
        if step.done:
            break
        size += int(step.value.byteLength)
        if size > limit:
            with suppress(Exception):  # the 413 stands whether or not the stream cancels
                await reader.cancel()
            return None
        chunks.push(step.value)
    return Request(JsRequest.new(raw, js_object({"body": Blob.new(chunks)})))
