"""The Worker's HTTP side: the fast path, then the FastAPI app, wired to ``env``."""

from __future__ import annotations

import logging
from http import HTTPMethod
from typing import Any
from urllib.parse import urlsplit

from js import Response

from ...access.audit import audit_refusal
from ...access.rate_limits import FailedAttempts
from ...api.app import create_app
from ...api.body_route import OPEN_BODY_BYTES
from ...api.generate import HEADERS, GenerationHandler, RequestView, on_fast_route, takes_fast_path
from ...api.health import HEALTHZ, health
from ...api.reply import Reply
from ...api.request_body import payload_too_large
from ...api.routes.exchange import EXCHANGE
from ...api.starlette_view import form_parts
from ...errors import ApiError
from ...request_context import note_route
from ...service.settings import Settings
from ..bindings.image_buffer import JsImage, json_around
from ..ffi import is_nullish, js_object, js_text
from .asgi import asgi
from .body import JsBody, within_limit
from .console_log import send_to_console
from .gateway_env import connecting_ip, gateway_from_env, gateway_of
from .js_errors import error_response

log = logging.getLogger("fluxgate.edge")

send_to_console()  # the audit log reaches Workers Logs, at its own level


class PassedOn(logging.Filter):
    """Drops the ASGI bridge's line for a fault it passes on to its caller ("ASGI request
    failed", with the traceback): the envelope logs that fault itself, once, as the local
    server does (:func:`~fluxgate.errors.unhandled`). The bridge's other lines stay (a
    fault after the response started, which nothing above it sees)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI request failed"


logging.getLogger("asgi").addFilter(PassedOn())  # the SDK's bridge logs as "asgi"

# The app, its routes and its OpenAPI schema are built at import: on Workers that is deploy
# time, into the memory snapshot, not the first request of every isolate. The generation
# handler (and its failed-authentication throttle) is the app's and the fast path's.
_generations = GenerationHandler(FailedAttempts(), form_parts)
APP = create_app(
    gateway_of,
    client_address=connecting_ip,
    generations=_generations,
    fast_path_in_front=False,  # handle() runs it, before the ASGI bridge
    body_limit_in_front=False,  # handle() checks bodies before the bridge (body.py)
    envelope_in_front=False,  # the Worker's entry runs it around every path (envelope.py)
)
APP.openapi()


async def fast_path(raw: Any, method: str, env: Any) -> Any:
    """The JS response of the generation handler (``api/generate.py``) to the JS request
    ``raw`` when its head says it takes the fast path (:func:`takes_fast_path`); else
    ``None``, with nothing read or counted."""
    try:
        gw = gateway_from_env(env)
    except ApiError:  # misconfigured: the app answers 503 server_misconfigured
        return None

    url = urlsplit(str(raw.url))
    if not on_fast_route(gw.settings, method, url.path):
        return None
    js_headers = raw.headers  # read once each, so that the handler's lookups stay in Python
    head = {n: value for n in HEADERS if (value := js_text(js_headers.get(n))) is not None}
    header = head.get
    if not takes_fast_path(gw.settings, method, url.path, header):
        return None

    body = JsBody(raw)
    host = js_text(js_headers.get("host")) or url.netloc  # as the ASGI bridge has it
    view = RequestView(
        method=method,
        path=url.path,
        header=header,
        body=body,
        client=js_text(js_headers.get("cf-connecting-ip")) or "unknown",
        base_url=f"{url.scheme}://{host}/",
    )
    reply = await _generations.handle(gw, view)
    await body.discard()
    return await js_reply(reply)


async def js_reply(reply: Reply) -> Any:
    """The JS response; a ``b64_json`` body is assembled in JS when the runtime can."""
    body: Any = reply.prefix
    if reply.image is not None:
        spliced = None
        if isinstance(reply.image, JsImage):
            spliced = json_around(reply.prefix, reply.image, reply.suffix)
        if spliced is None:  # no toBase64 here: the base64 goes through Python once
            spliced = await reply.text()
        body = spliced
    return Response.new(body, js_object({"status": reply.status, "headers": reply.headers}))


async def liveness(raw: Any, method: str, env: Any) -> Any:
    """The JS response to ``GET /healthz`` (:func:`~fluxgate.api.health.health`), answered
    without the ASGI bridge; ``None`` for any other request, or one with a body (the app
    checks bodies against their limit first) or a gateway that does not build (the app
    answers ``503 server_misconfigured``)."""
    if method != "GET" or urlsplit(str(raw.url)).path != HEALTHZ:
        return None
    if not is_nullish(raw.body):  # the app's body checks first, as for any request
        return None
    try:
        gw = gateway_from_env(env)
    except ApiError:
        return None
    note_route(HEALTHZ)
    return await js_reply(health(gw))


async def handle(request: Any, env: Any, ctx: Any) -> Any:
    """Serve ``request``: liveness (:func:`liveness`), or a JSON generation by the fast
    path (:func:`fast_path`) when its head says so, each answered completely; anything else
    with the FastAPI app once its body is known to be within limits.

    A method outside Python's ``HTTPMethod`` (``QUERY``, ``PROPFIND`` …) is refused here:
    the SDK's ``Request.method`` looks it up in that enum and would raise inside the bridge.
    No route of the app accepts one anyway.
    """
    raw = request.js_object
    method = str(raw.method)
    if method not in HTTPMethod.__members__:  # case-sensitive, as the SDK
        return error_response(
            ApiError(405, "method_not_allowed", f"The method {method} is not allowed.")
        )
    answered = await liveness(raw, method, env)  # a fault in either: the envelope's 500
    if answered is None:
        answered = await fast_path(raw, method, env)
    if answered is not None:
        return answered
    path = urlsplit(str(raw.url)).path
    try:
        limit = gateway_from_env(env).settings.max_body_bytes
    except ApiError:  # misconfigured: the app answers 503 server_misconfigured, within limits
        limit = Settings.model_fields["max_body_bytes"].default
    if path == EXCHANGE:  # its body is its credential: read as little as the app will
        limit = min(limit, OPEN_BODY_BYTES)
    try:
        checked = await within_limit(request, limit)
        if checked is None:
            raise payload_too_large(limit)
    except ApiError as exc:  # audited as the app's refusals are, by path
        audit_refusal(exc, principal=None, prompt=None, include_prompt=False, path=path)
        return error_response(exc)
    return await asgi.fetch(APP, checked, env, ctx)
