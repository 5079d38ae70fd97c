"""Request bodies on Workers are size-checked before the ASGI bridge buffers them.

The Workers SDK's ``workers.asgi`` reads the whole body into memory before the app runs, so
the app's own streaming cap (``request_body.read_capped``) would come too late: a request
declaring 50 MB would be read to its end first. Here a declared ``Content-Length`` over the
limit is refused from the header alone, and a body without one (chunked) is counted chunk
by chunk as JS buffers (never converted to Python bytes) and refused as soon as it passes
the limit.
"""

from __future__ import annotations

from typing import Any

from js import Array, Blob
from js import Request as JsRequest
from workers import Request

from ..api.request_body import declared_length
from .ffi import is_nullish, js_object, js_text


async def within_limit(request: Request, limit: int) -> Request | None:
    """The request to hand to the app (re-built when its body had to be read), or ``None``
    when its body is over ``limit`` bytes."""
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
        step = await reader.read()
        if step.done:
            break
        size += int(step.value.byteLength)
        if size > limit:
            await reader.cancel()
            return None
        chunks.push(step.value)
    return Request(JsRequest.new(raw, js_object({"body": Blob.new(chunks)})))
