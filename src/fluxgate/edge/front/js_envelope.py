"""The Worker's outermost layer: request id, CORS, the JSON access log, around every path.

The peer of ``api/asgi_envelope.py`` (the local runtime's ASGI layer), in JS terms: the
Worker answers signed downloads and JSON generations before the ASGI bridge, so the envelope
wraps the entry point, not the app. Preflights are answered here, before FastAPI is
involved. It is the Worker's one catch-all: a fault any path lets through becomes the
``500 internal_error`` here (:func:`~fluxgate.errors.unhandled`), as the local runtime's
envelope does it (with :func:`~.js_errors.error_response`, how the Worker sends any error).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

from js import Response, console

from ...access.cors import ORIGIN_REFUSED, CorsPolicy, is_preflight, policy_for
from ...errors import unhandled
from ...request_context import REQUEST_ID_HEADER, begin, end
from ..ffi import js_object, js_text
from .config import env_text
from .js_errors import error_response

Params = ParamSpec("Params")


def _preflight(cors: CorsPolicy, origin: str | None, requested_headers: str | None) -> Any:
    answer = cors.preflight(origin, requested_headers)
    if answer.status != 204:
        return error_response(ORIGIN_REFUSED)
    return Response.new(None, js_object({"status": 204, "headers": answer.headers}))


def _set_all(target: Any, headers: dict[str, str]) -> None:
    for name, value in headers.items():
        if name == "Vary":  # added to, never replacing, what the response varies on
            target.append(name, value)
        else:
            target.set(name, value)


def _stamp(response: Any, headers: dict[str, str]) -> Any:
    """``headers`` set on ``response``; a response whose headers are immutable (one from
    the Cache API or ``fetch``) is copied first, its body still a stream."""
    try:
        _set_all(response.headers, headers)
        return response
    except Exception:  # TypeError: immutable headers (the first set throws)
        copy = Response.new(response.body, response)
        _set_all(copy.headers, headers)
        return copy


async def enveloped(
    raw: Any,
    env: Any,
    path: str,
    inner: Callable[Params, Awaitable[Any]],
    *args: Params.args,
    **kwargs: Params.kwargs,
) -> Any:
    """Serve the JS request ``raw`` (for ``path``) with ``inner(*args, **kwargs)``, inside
    its exchange: the route's own function and its arguments, called from here (the entry
    passes no closure of its own down, so that the envelope never calls back into it).

    The access line goes straight to ``console.log`` (Workers Logs), not through Python's
    ``logging`` and stderr: measured, that costs a fifth of a light request's CPU."""
    method = str(raw.method)
    header = raw.headers.get
    exchange, token = begin(method, path, js_text(header(REQUEST_ID_HEADER)))
    status = 500
    try:
        cors = policy_for(env_text(env, "CORS_ALLOWED_ORIGINS"))
        origin = js_text(header("origin")) if cors.enabled else None
        extra = {REQUEST_ID_HEADER: exchange.request_id}
        if is_preflight(method, lambda name: js_text(header(name))):
            requested = js_text(header("access-control-request-headers"))
            response = _preflight(cors, origin, requested)
        else:
            extra.update(cors.response_headers(origin))
            try:
                response = await inner(*args, **kwargs)
            except Exception as exc:  # a fault past every handler: the one 500, with the id
                response = error_response(unhandled(exc))
        response = _stamp(response, extra)
        status = int(response.status)
        return response
    finally:
        console.log(exchange.access_line(status))
        end(token)
