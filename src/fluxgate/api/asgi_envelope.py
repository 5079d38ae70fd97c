"""The outermost ASGI layer: request id, CORS, the JSON access log.

Every response leaves through here, whichever layer made it (a route, an error handler,
the fast path): it gets its ``X-Request-Id`` and, for an allowed origin, its CORS
headers, and the request gets its one access-log line. A preflight is answered here,
before any route (none of them takes ``OPTIONS``).

The local runtime runs it in front of the app. The Worker does the same in JS around all
of its paths (``edge/front/js_envelope.py``), since two of them answer before the ASGI
bridge; its app runs this layer with ``outermost=False``, which only tells the exchange
which route matched. Outermost, it is the local runtime's one catch-all: a fault nothing
handled is answered here as ``500 internal_error`` (:func:`~fluxgate.errors.unhandled`, as
the Worker's envelope answers it); Starlette's own last-resort handler sits outside every
middleware and would answer without the id.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..access.cors import NO_CORS, ORIGIN_REFUSED, CorsPolicy, is_preflight, policy_for
from ..errors import ApiError, unhandled
from ..request_context import REQUEST_ID_HEADER, Exchange, begin, end, note_route
from .deps import Resolver, error_response, resolved
from .response_stamp import StampedSend

access_log = logging.getLogger("fluxgate.access")


def route_template(scope: Scope) -> str | None:
    """The matched route's path template, once the router has run."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class Envelope:
    def __init__(self, app: ASGIApp, *, resolve: Resolver, outermost: bool = True) -> None:
        self.app = app
        self._resolve = resolve
        self._outermost = outermost

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._outermost:
            try:
                await self.app(scope, receive, send)
            finally:
                template = route_template(scope)
                if template is not None:
                    note_route(template)
            return
        headers = Headers(scope=scope)
        exchange, token = begin(scope["method"], scope["path"], headers.get("x-request-id"))
        try:
            await self._exchange(exchange, scope, receive, send, headers)
        finally:
            end(token)

    async def _cors(self, scope: Scope) -> CorsPolicy:
        try:
            gw = await resolved(self._resolve, Request(scope))
            return policy_for(gw.settings.cors_allowed_origins)
        except ApiError:  # misconfigured: the app answers 503 itself, with no CORS
            return NO_CORS

    async def _exchange(
        self, exchange: Exchange, scope: Scope, receive: Receive, send: Send, headers: Headers
    ) -> None:
        origin = headers.get("origin")
        cors = await self._cors(scope)
        preflight = is_preflight(scope["method"], headers.get)
        extra = {REQUEST_ID_HEADER: exchange.request_id}
        if not preflight:  # a preflight's answer carries its own CORS headers
            extra.update(cors.response_headers(origin))
        stamped = StampedSend(send, extra)
        try:
            if preflight:
                answer = cors.preflight(origin, headers.get("access-control-request-headers"))
                response = (
                    Response(status_code=204, headers=answer.headers)
                    if answer.status == 204
                    else error_response(ORIGIN_REFUSED)
                )
                await response(scope, receive, stamped)
                return
            try:
                await self.app(scope, receive, stamped)
            except Exception as exc:
                error = unhandled(exc)
                if stamped.started:  # the status line is out: nothing else can be said
                    raise
                await error_response(error)(scope, receive, stamped)
        finally:
            exchange.route = route_template(scope)
            access_log.info(exchange.access_line(stamped.status))
