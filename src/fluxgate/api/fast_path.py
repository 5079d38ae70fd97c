"""The local server's fast path: JSON generations answered in front of the app.

A request whose head says it is a JSON generation (:func:`~.generate.takes_fast_path`:
method, path, content type and declared length, and ``FAST_PATH``) is handed to the
generation handler here, as ASGI middleware, without FastAPI's routing; the handler answers
it completely, refusals included, exactly as the route (which calls the same handler)
would. Any other request goes on to the app untouched, its body unread. The Worker does
the same before its ASGI bridge (``edge/front/serve.py``).

It is also where the local server's request joins a repeated ``Authorization`` as the
Worker's does (:func:`one_authorization`), so that the fast path and the app's routes read
the same single value.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from ..errors import ApiError
from .deps import ClientAddress, Resolver, resolved
from .generate import GenerationHandler, takes_fast_path
from .starlette_view import request_view, response


def one_authorization(scope: Any) -> Any:
    """``scope`` with its repeated ``Authorization`` headers joined into one, as the
    Worker's request has them (the Fetch standard joins with ``", "``): a request with two
    credentials is refused for an invalid one on both runtimes, never authenticated by
    whichever comes first."""
    values = [v for k, v in scope["headers"] if k == b"authorization"]
    others = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
    return {**scope, "headers": [*others, (b"authorization", b", ".join(values))]}


class FastPathMiddleware:
    """:class:`~.generate.GenerationHandler` in front of the app under ASGI."""

    def __init__(
        self,
        app: Any,
        *,
        generations: GenerationHandler,
        resolve: Resolver,
        client_address: ClientAddress,
    ) -> None:
        self._app = app
        self._generations = generations
        self._resolve = resolve
        self._client_address = client_address

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        if len(request.headers.getlist("authorization")) > 1:
            scope = one_authorization(scope)
            request = Request(scope, receive)
        try:
            gw = await resolved(self._resolve, request)
        except ApiError:  # misconfigured: the app answers 503 server_misconfigured
            await self._app(scope, receive, send)
            return
        if not takes_fast_path(gw.settings, scope["method"], scope["path"], request.headers.get):
            await self._app(scope, receive, send)
            return
        view = request_view(request, self._client_address(request))
        answer = await response(await self._generations.handle(gw, view))
        await answer(scope, receive, send)
