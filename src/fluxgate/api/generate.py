"""``POST /v1/images/generations`` and ``/v1/images/edits``: the one handler.

Every generation request is answered by :meth:`GenerationHandler.handle`, whichever way it
came in: the FastAPI route (``routes/generations.py``), the local server's fast path (ASGI
middleware, ``fast_path.py``) or the Worker's (before its ASGI bridge,
``edge/front/serve.py``). It reads a :class:`RequestView` (method, path, headers, a body
reader, the client, the origin) and returns a :class:`~.reply.Reply`, and it is
framework-free: on Workers, CPU per request is what users pay for, and routing, dependency
resolution and the ASGI bridge cost as much as a cache hit itself.

Its steps, in order: the credential (behind the failed-authentication throttle), the scope,
the body (its media type, its size, JSON or multipart), the model and parameters, the
variants, then under an ``Idempotency-Key`` the claim, and the synchronous generation or the
async job. A refusal at any step is answered here, with its audit line; an unexpected
exception is not caught: the runtime's one catch-all logs it and answers ``500``.

Which requests skip the web framework is decided from the request line and headers alone
(:func:`takes_fast_path`), before anything is read or counted, so that taking the fast path
changes how much CPU a request costs, never its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..access.audit import audit_refusal
from ..access.auth import SCOPE_GENERATE, Principal
from ..access.rate_limits import FailedAttempts
from ..access.sign_in_config import APP_CHECK_HEADER
from ..delivery.variants import Variant, parse_variants, unavailable
from ..errors import ApiError
from ..model.params import GenerationParams, ReferenceImage
from ..policy.prompts import audit_prompt
from ..request_context import note_generation
from ..service.controls import retry_hold
from ..service.gateway import Gateway
from ..service.generation import Outcome
from ..service.idempotency import checked_key, fingerprint
from ..service.settings import Settings
from ..store.answers import StoredResponse
from ..store.cache_keys import CacheMode
from .idempotent import Answer, idempotently, replayed
from .present import presenter
from .reply import Reply, b64_mark, refused
from .request_body import (
    BodyReader,
    FormParser,
    accepted_media,
    declared_length,
    generation_params,
    media_type,
    parse_generation,
    requested_model,
)
from .schemas import GenerationRequest

GENERATIONS = "/v1/images/generations"
EDITS = "/v1/images/edits"
# Every header the fast-path decision and the handler read. A runtime may read exactly these
# once, up front, and hand the handler a plain lookup (the Worker does: one call into JS
# each, none back into the runtime per lookup).
HEADERS = (
    "authorization",
    "cache-control",
    "content-length",
    "content-type",
    "idempotency-key",
    "prefer",
    "transfer-encoding",
    APP_CHECK_HEADER,
)


@dataclass(frozen=True)
class RequestView:
    """A request as the handler reads it, runtime-neutral. ``header(name)``: a header's
    value by lower-case name, ``None`` when absent. ``body(limit)``: the whole body, ``413``
    past ``limit`` bytes (read only once the credential checks out). ``client``: who sent
    it, for the failed-authentication throttle. ``base_url``: the origin it was sent to,
    ending in ``/``."""

    method: str
    path: str
    header: Callable[[str], str | None]
    body: BodyReader
    client: str
    base_url: str


def on_fast_route(settings: Settings, method: str, path: str) -> bool:
    """The request line's half of :func:`takes_fast_path`: a ``POST`` to the generations
    path, with ``FAST_PATH`` on (a runtime reads no header of any other request)."""
    return settings.fast_path and method == "POST" and path == GENERATIONS


def takes_fast_path(
    settings: Settings, method: str, path: str, header: Callable[[str], str | None]
) -> bool:
    """Whether a request is answered in front of the web framework, from its head alone: a
    JSON ``POST`` to the generations path that declares its length, within
    ``max_body_bytes`` (a chunked or oversize body meets the runtime's own body limits
    first, as every other request does). ``FAST_PATH=false`` turns it off."""
    if not on_fast_route(settings, method, path):
        return False
    if media_type(header("content-type")) != "application/json":
        return False
    if header("transfer-encoding") is not None:
        return False
    declared = declared_length(header("content-length"))
    return declared is not None and declared <= settings.max_body_bytes


def resolved_params(
    body: GenerationRequest, references: tuple[ReferenceImage, ...], gw: Gateway
) -> GenerationParams:
    """The request's model and parameters."""
    spec = requested_model(body, gw.find_model)
    return generation_params(body, references, spec, gw.served_name(spec))


def requested_variants(body: GenerationRequest, gw: Gateway) -> tuple[Variant, ...]:
    """The variants a request asks for: validated (``400 invalid_variant``), repeats
    dropped, and refused with ``501 variants_unavailable`` where they could not be made,
    before anything is generated."""
    variants = parse_variants(body.variants or ())
    if variants and gw.variants is None:
        raise unavailable()
    return variants


def generation_answered(outcome: Outcome) -> dict[str, str]:
    """A synchronous generation's headers, its facts noted for the request's access-log
    line. A model-bound answer tells the client how it stands against its rate limit
    (``RateLimit-*``, as far as the runtime knows)."""
    record = outcome.record
    charged = record.cost().usd if record.charged and outcome.cache != "HIT" else 0.0
    note_generation(outcome.cache, charged, outcome.model_ms)
    headers = {
        "X-Cache": outcome.cache,
        "X-Fluxgate-Model": record.model,
        "Cache-Control": "no-store",
        **outcome.pace,
    }
    if outcome.model_ms is not None and outcome.cache != "HIT":
        headers["Server-Timing"] = f"model;dur={outcome.model_ms:.1f}"
    return headers


@dataclass(frozen=True)
class _Asked:
    """A parsed, admitted request: who asks (for its end user, if it names one), what."""

    principal: Principal
    body: GenerationRequest
    params: GenerationParams
    variants: tuple[Variant, ...]
    mode: CacheMode
    prefer_async: bool


class GenerationHandler:
    """The generation routes. ``attempts``: the failed-authentication throttle's memory,
    shared with the app's other routes. ``forms``: the runtime's multipart parser."""

    def __init__(self, attempts: FailedAttempts, forms: FormParser) -> None:
        self.attempts = attempts
        self._forms = forms

    async def handle(self, gw: Gateway, view: RequestView) -> Reply:
        """The answer to ``view``: a generation, a job, a replay or a refusal."""
        principal: Principal | None = None
        prompt: str | None = None
        try:
            principal = await self._caller(gw, view)
            principal.require(SCOPE_GENERATE)
            body, references = await self._parsed(gw, view)
            params = resolved_params(body, references, gw)
            variants = requested_variants(body, gw)
            principal = principal.as_end_user(body.end_user)
            # for the audit line of a refusal: raw and bounded; the policy normalises it once
            prompt = audit_prompt(body.prompt, gw.settings.max_prompt_length)
            asked = _Asked(
                principal,
                body,
                params,
                variants,
                CacheMode.from_header(view.header("cache-control")),
                "respond-async" in (view.header("prefer") or "").lower(),
            )
            return await self._idempotently(gw, view, asked)
        except ApiError as error:
            audit_refusal(
                error,
                principal=principal,
                prompt=prompt,
                include_prompt=gw.settings.audit_log_prompts,
                path=view.path,
            )
            return refused(error)

    async def _parsed(
        self, gw: Gateway, view: RequestView
    ) -> tuple[GenerationRequest, tuple[ReferenceImage, ...]]:
        """The body, read through the runtime's reader once its media type is one the
        route takes, and parsed."""
        content_type, edit = view.header("content-type"), view.path == EDITS
        accepted_media(content_type, edit=edit)
        limit = gw.settings.max_body_bytes
        return await parse_generation(
            content_type,
            await view.body(limit),
            self._forms,
            max_body=limit,
            max_image=gw.settings.max_reference_image_bytes,
            edit=edit,
        )

    async def _caller(self, gw: Gateway, view: RequestView) -> Principal:
        authorization = view.header("authorization")
        try:
            return await gw.authenticate(authorization, view.header(APP_CHECK_HEADER))
        except ApiError as error:
            if authorization is None:
                raise
            raise await self.attempts.refusal(
                error, client=view.client, limiter=gw.limiter, clock=gw.clock
            ) from None

    async def _idempotently(self, gw: Gateway, view: RequestView, asked: _Asked) -> Reply:
        """The answer; under an ``Idempotency-Key``, claimed, kept, or the first replayed."""
        key = view.header("idempotency-key")
        # A retry of a request that died takes its charge over (the same hold), so the two
        # are charged once; without the header each request holds its own.
        hold = None if key is None else retry_hold(asked.principal.scope_id, checked_key(key))

        def answer() -> Awaitable[Answer]:
            return self._answer(gw, view, asked, hold)

        if key is None:
            return (await answer()).reply()
        body = asked.body
        request = {
            "response_format": body.response_format,
            "url_ttl_seconds": body.url_ttl_seconds,
            "async": body.run_async or asked.prefer_async,
            "webhook_url": body.webhook_url,
            "cache": asked.mode.value,
            "variants": [v.name for v in asked.variants],
        }
        route = "edits" if view.path == EDITS else "generations"
        request_hash = fingerprint(route, asked.params, request)
        begun = await gw.idempotency.begin(asked.principal, checked_key(key), request_hash)
        if isinstance(begun, StoredResponse):
            return await replayed(gw, begun)
        return (await idempotently(gw, begun, answer)).reply()

    async def _answer(
        self, gw: Gateway, view: RequestView, asked: _Asked, hold: str | None
    ) -> Answer:
        if asked.body.run_async or asked.prefer_async:
            return await _submit(gw, view, asked)
        return await _sync(gw, view, asked, hold)


async def _sync(gw: Gateway, view: RequestView, asked: _Asked, hold: str | None) -> Answer:
    body = asked.body
    if body.webhook_url is not None:
        raise ApiError(
            400,
            "webhook_requires_async",
            "webhook_url needs an async request ('async': true or 'Prefer: respond-async').",
            param="webhook_url",
        )
    want_bytes = body.response_format == "b64_json"
    outcome = await gw.generator.generate(
        asked.principal, asked.params, asked.mode, want_bytes=want_bytes, hold=hold
    )
    image = outcome.image if want_bytes else None
    generation = presenter(gw).generation(
        outcome.record,
        base_url=view.base_url,
        cached=outcome.cache == "HIT",
        url_ttl=body.url_ttl_seconds,
        b64_json=b64_mark() if image is not None else None,
        variants=asked.variants,
    )
    return Answer(
        200,
        generation.to_json(),
        generation_answered(outcome),
        image,
        outcome.record.object_key if image is not None else None,
    )


async def _submit(gw: Gateway, view: RequestView, asked: _Asked) -> Answer:
    if gw.jobs is None:
        raise ApiError(501, "async_unavailable", "Async generations are not configured here.")
    job, pace = await gw.jobs.submit(
        asked.principal,
        asked.params,
        asked.mode,
        asked.body.webhook_url,
        base_url=view.base_url,
        variants=asked.variants,
    )
    content = presenter(gw).job(job, view.base_url)
    headers = {"Location": content["status_url"], "Cache-Control": "no-store", **pace}
    if asked.prefer_async:
        headers["Preference-Applied"] = "respond-async"
    if not job.done:
        headers["Retry-After"] = "2"
    return Answer(202, content, headers)
