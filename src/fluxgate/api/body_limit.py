"""The local server's body limit, in front of the app, as the Worker has it.

On Workers every request that the fast path does not answer has its body checked before the
ASGI bridge buffers it (``edge/front/body.py``): a declared ``Content-Length`` over
``MAX_BODY_BYTES`` is ``413 payload_too_large`` from the header alone, and a body without
one (chunked) is counted as it arrives and refused as soon as it passes the limit, both
before any credential is looked at. This layer does the same locally, so that an oversize
body gets the same answer from both runtimes whoever sends it. A body within the limit that
had to be read (chunked) is handed to the app as read; any other is not touched.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..access.audit import audit_refusal
from ..errors import ApiError
from ..service.settings import Settings
from .deps import Resolver, error_response, resolved
from .request_body import body_incomplete, declared_length, payload_too_large


async def _counted(receive: Receive, limit: int) -> bytes | None:
    """A body without a declared length, read whole; ``None`` past ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # the client went away mid-body
            raise body_incomplete()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """``receive`` with the body already read given once, whole, then the rest as it comes
    (a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class BodyLimit:
    """``MAX_BODY_BYTES`` for every request, before the app (and its fast path) runs."""

    def __init__(self, app: ASGIApp, *, resolve: Resolver) -> None:
        self._app = app
        self._resolve = resolve

    async def _limit(self, request: Request) -> int:
        try:
            return (await resolved(self._resolve, request)).settings.max_body_bytes
        except ApiError:  # misconfigured: the app answers 503, within the default limit
            return int(Settings.model_fields["max_body_bytes"].default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        headers = request.headers
        declared = declared_length(headers.get("content-length"))
        if declared is None and "transfer-encoding" not in headers:
            await self._app(scope, receive, send)  # no body
            return
        limit = await self._limit(request)
        body: bytes | None = None
        try:
            if declared is not None and declared > limit:
                raise payload_too_large(limit)
            if declared is None:
                body = await _counted(receive, limit)
                if body is None:
                    raise payload_too_large(limit)
        except ApiError as error:  # audited as the app's refusals are, by path
            path = scope["path"]
            audit_refusal(error, principal=None, prompt=None, include_prompt=False, path=path)
            await error_response(error)(scope, receive, send)
            return
        await self._app(scope, receive if body is None else _replay(body, receive), send)
