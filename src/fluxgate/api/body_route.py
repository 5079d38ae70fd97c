"""Routes with a JSON body model: the credential first, then the body, parsed our way.

FastAPI reads and parses a route's body before any dependency runs, so an unauthenticated
client could make the admin and account routes parse whatever it sent, and it parses with
``json.loads(bytes)``, which guesses UTF-16 and UTF-32 and has no depth limit (a fatal
stack overflow on Workers). A router whose routes take a body model uses one of the route
classes here: the route's credential is checked before a byte of the body is read, the body
is read capped at ``max_body_bytes`` and parsed by :func:`~.json_text.parse_json`, and
FastAPI is handed the parsed value instead of parsing it again. Routes of the same router
without a body model are not touched: their body is never read.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from .deps import admin_checked, caller_checked, gateway
from .json_text import parse_json
from .request_body import media_type, read_capped


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, as FastAPI decides to parse a body."""
    media = media_type(content_type)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


_UNPARSED = object()
# What an unauthenticated body may be: an ID token is at most 16 KiB, with room to spare.
OPEN_BODY_BYTES = 64 * 1024


class ReadBody(Request):
    """The request FastAPI is handed once its body is read: the bytes, and the JSON value
    :func:`parse_json` made of them (FastAPI asks for it only of a non-empty JSON body,
    which the route has parsed already: its errors are the API's, not FastAPI's generic
    400)."""

    def __init__(self, scope: Scope, receive: Receive, body: bytes, value: Any = _UNPARSED) -> None:
        super().__init__(scope, receive)
        self.read_body = body
        self.value = value

    async def body(self) -> bytes:
        return self.read_body

    async def json(self) -> Any:
        return parse_json(self.read_body) if self.value is _UNPARSED else self.value


class JsonBodyRoute(APIRoute):
    """A route whose body is read only once :meth:`credential` has passed. Subclasses say
    which credential: :class:`CallerBodyRoute`, :class:`AdminBodyRoute`."""

    async def credential(self, request: Request) -> None:
        raise NotImplementedError

    def body_limit(self, max_body_bytes: int) -> int:
        """The most bytes of body the route reads (``MAX_BODY_BYTES``, unless smaller)."""
        return max_body_bytes

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if self.body_field is None:  # no body model: the body is never read
            return handler

        async def checked(request: Request) -> Response:
            await self.credential(request)  # 401/403/429 before the body is read
            limit = self.body_limit((await gateway(request)).settings.max_body_bytes)
            body = await read_capped(request.stream(), request.headers.get("content-length"), limit)
            read = ReadBody(request.scope, request.receive, body)
            if body and is_json(request.headers.get("content-type")):
                read = ReadBody(request.scope, request.receive, body, parse_json(body))
            return await handler(read)

        return checked


class CallerBodyRoute(JsonBodyRoute):
    """The caller's API key or client token first (``Caller``)."""

    async def credential(self, request: Request) -> None:
        await caller_checked(request)


class OpenBodyRoute(JsonBodyRoute):
    """No credential: the body is the credential (``POST /v1/tokens/exchange``'s ID
    token), so it is read capped small, :data:`OPEN_BODY_BYTES`, whatever
    ``MAX_BODY_BYTES`` allows the authenticated routes."""

    async def credential(self, request: Request) -> None:
        return None

    def body_limit(self, max_body_bytes: int) -> int:
        return min(max_body_bytes, OPEN_BODY_BYTES)


class AdminBodyRoute(JsonBodyRoute):
    """The admin credential first (``Admin``)."""

    async def credential(self, request: Request) -> None:
        await admin_checked(request)
