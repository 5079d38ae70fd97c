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
from ...api.generate import HEADERS, GenerationHandler, RequestView, on_fast_route, takes_fast_path
from ...api.reply import Reply
from ...api.request_body import payload_too_large
from ...api.starlette_view import form_parts
from ...composition import assemble
from ...delivery.signing import SigningConfigError
from ...errors import ApiError
from ...model.coalesce import Coalescer, NoCoalescing
from ...policy.output_moderation import ScoutImageModerator
from ...policy.prompt_moderation import GuardModerator
from ...service.gateway import Gateway, JobPorts, Ports
from ...service.settings import ConfigError, Settings, admin_token_from
from ...store.records import GenerationRecord
from ..bindings.ai import WorkersAIRunner, WorkersImageModel
from ..bindings.analytics_engine import usage_events_from_env
from ..bindings.answers_object import idempotency_from_env
from ..bindings.catalog_object import WorkersCatalog
from ..bindings.coalescer_object import DurableCoalescer
from ..bindings.edge_cache import WorkersEdgeCache
from ..bindings.image_buffer import JsImage, json_around
from ..bindings.images_binding import transformer_from_env
from ..bindings.job_objects import FetchPoster, WorkersJobStore, WorkersQueue
from ..bindings.kv import WorkersKV
from ..bindings.ledger_object import WorkersLedger
from ..bindings.r2 import WorkersR2
from ..bindings.rate_limiting import WorkersRateLimiter
from ..ffi import js_object, js_text
from .asgi import asgi
from .body import JsBody, within_limit
from .config import EnvVars, env_text, signer_from_env
from .console_log import send_to_console
from .js_envelope import error_response

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

_gateway: Gateway | None = None


def gateway_from_env(env: Any) -> Gateway:
    """One gateway per isolate, built on the first event.

    Bindings, vars and secrets are fixed for an isolate's life (a new deploy or secret
    starts new isolates), so the settings, the signer, the variant maker, the
    policy-document cache and the coalescers are made once, for the app, the fast path
    and the file route alike. The key cannot be ``env`` itself: the Workers SDK wraps
    ``env`` in a new object for every event.
    """
    global _gateway
    if _gateway is None:
        try:
            _gateway = assemble(ports_from_env(env))
        except (ConfigError, SigningConfigError) as exc:
            # The message names the variable, never its value.
            raise ApiError(503, "server_misconfigured", str(exc)) from exc
    return _gateway


def ports_from_env(env: Any) -> Ports:
    """The Worker's ports: its bindings, vars and secrets. The settings are read as the
    local runtime reads its environment (:meth:`Settings.from_mapping`), off ``env``."""
    settings = Settings.from_mapping(EnvVars(env))
    return Ports(
        settings=settings,
        kv=WorkersKV(env.KV),
        objects=WorkersR2(env.IMAGES),
        model=WorkersImageModel(env.AI),
        signer=signer_from_env(env),
        limiter=WorkersRateLimiter(env),
        ledger=WorkersLedger(env.BUDGETS),
        moderator=GuardModerator(WorkersAIRunner(env.AI)),
        image_moderator=ScoutImageModerator(WorkersAIRunner(env.AI)),
        admin_token=admin_token_from(env_text(env, "ADMIN_TOKEN")),
        coalescer=coalescer_from_env(env),
        jobs=jobs_from_env(env),
        catalog=catalog_from_env(env),
        usage_events=usage_events_from_env(env),
        idempotency=idempotency_from_env(env),
        transformer=transformer_from_env(env),
        variant_coalescer=variant_coalescer(env),
        edge_cache=WorkersEdgeCache(),
    )


def catalog_from_env(env: Any) -> WorkersCatalog | None:
    """Listings when the CATALOG objects are bound (else they answer 501)."""
    namespace = getattr(env, "CATALOG", None)
    return None if namespace is None else WorkersCatalog(namespace)


def jobs_from_env(env: Any) -> JobPorts | None:
    """Async jobs when both the JOBS objects and the JOB_QUEUE producer are bound."""
    namespace, queue = getattr(env, "JOBS", None), getattr(env, "JOB_QUEUE", None)
    if namespace is None or queue is None:
        return None
    return JobPorts(WorkersJobStore(namespace), WorkersQueue(queue), FetchPoster())


def coalescer_from_env(env: Any) -> Coalescer:
    """Through the key's Durable Object when the COALESCER binding exists; else none at all.

    Not the in-process coalescer the local runtime uses: on workerd a waiter resumed by
    another request's future answers from that request's I/O context (see
    :mod:`fluxgate.edge.bindings.coalescer_object`), so without the binding each request generates
    alone."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return NoCoalescing()
    return DurableCoalescer(
        namespace, encode=GenerationRecord.to_json, decode=GenerationRecord.from_json
    )


def variant_coalescer(env: Any) -> Coalescer | None:
    """One transformation per variant in flight, across isolates: the variant's Durable
    Object (``variant:<key>`` in the ``COALESCER`` namespace) elects the first download
    leader and holds the others until it reports. Only a download that finds no variant
    in R2 asks (once per variant, ever, barring failures), and a Durable Object request
    costs a fraction of a billed transformation; the leader's R2 write is what the
    waiters then serve. Without the binding, ``None``: within the isolate."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return None
    return DurableCoalescer(
        namespace,
        encode=lambda made: "made" if made else "gone",
        decode=lambda raw: raw == "made",
    )


def connecting_ip(request: Any) -> str:
    """The client, as Cloudflare names it: ``CF-Connecting-IP`` is set by the edge (a value
    a client sends is replaced), so it is safe to throttle by."""
    return str(request.headers.get("cf-connecting-ip") or "unknown")


# The app, its routes and its OpenAPI schema are built at import: on Workers that is deploy
# time, into the memory snapshot, not the first request of every isolate. The generation
# handler (and its failed-authentication throttle) is the app's and the fast path's.
_generations = GenerationHandler(FailedAttempts(), form_parts)
APP = create_app(
    lambda request: gateway_from_env(request.scope["env"]),
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


async def handle(request: Any, env: Any, ctx: Any) -> Any:
    """Serve ``request``: a JSON generation by the fast path (:func:`fast_path`) when its
    head says so, which answers it completely; anything else with the FastAPI app once its
    body is known to be within limits.

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
    answered = await fast_path(raw, method, env)  # a fault: the envelope's 500
    if answered is not None:
        return answered
    try:
        limit = gateway_from_env(env).settings.max_body_bytes
    except ApiError:  # misconfigured: the app answers 503 server_misconfigured, within limits
        limit = Settings.model_fields["max_body_bytes"].default
    try:
        checked = await within_limit(request, limit)
        if checked is None:
            raise payload_too_large(limit)
    except ApiError as exc:  # audited as the app's refusals are, by path
        path = urlsplit(str(raw.url)).path
        audit_refusal(exc, principal=None, prompt=None, include_prompt=False, path=path)
        return error_response(exc)
    return await asgi.fetch(APP, checked, env, ctx)
