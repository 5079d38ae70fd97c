"""The direct path: JSON generations served without the web framework.

A JSON ``POST /v1/images/generations`` is the request this API exists for, and on Workers
CPU per request is what users pay for: routing, dependency resolution and the ASGI bridge
cost as much as a cache hit itself. So it is first offered to :class:`DirectPath`, which
runs the route's own steps (:func:`parse_json_generation`, :func:`resolved_params`, the
generator, the presenter, :func:`generation_answered`) and answers the request itself.

It *declines* (returns ``None``) whatever it would not answer exactly as the route does,
always before any side effect: a credential that does not check out (the route counts the
failed attempt), an invalid body, an async request, a moderated tier, any refusal of the
admission. The FastAPI route then answers as it always has. Once the generator runs, the
answer is this path's: a refusal from then on (rate limit, budget, model, storage) gets
the app's error body and audit line (:meth:`ApiError.to_json`, :func:`audit_refusal`),
an unexpected fault the app's ``500 internal_error``.

Only bodies that declare their length (up to :data:`MAX_DIRECT_BODY`) come here: a chunked
body, or a larger one (reference images), goes to the route, which streams and caps it.

Both runtimes use it: the local server as ASGI middleware (:class:`DirectMiddleware`), the
Worker before the ASGI bridge (``edge/app.py``), with the request body read once.
"""

from __future__ import annotations

import functools
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..access.auth import SCOPE_GENERATE, Principal
from ..access.rate_limits import FailedAttempts
from ..delivery.variants import Variant
from ..errors import INTERNAL_ERROR, ApiError
from ..imaging.image_bytes import ImageBytes
from ..policy.prompts import audit_prompt
from ..service.gateway import Gateway
from ..service.generation import Outcome
from ..store.cache_keys import CacheMode
from .deps import ClientAddress, Resolver, audit_refusal
from .present import presenter
from .request_body import declared_length, media_type, parse_json_generation
from .routes.generations import generation_answered, requested_variants, resolved_params
from .schemas import GenerationRequest

log = logging.getLogger("fluxgate.direct")

PATH = "/v1/images/generations"
# A JSON generation without reference images is a few hundred bytes; bodies over this go
# to the route, whose body reading streams and caps them.
MAX_DIRECT_BODY = 16 * 1024


@functools.cache
def _b64_mark() -> str:
    """Stands for the base64 of the image in a b64_json body until the runtime splices it
    in: random, so no value a client chose (a prompt, an end-user id) can contain it. Made
    on first use, never at import: workerd refuses randomness while a Worker starts (the
    values would repeat across isolates restored from the deploy-time snapshot)."""
    return secrets.token_hex(16)


@dataclass(frozen=True)
class DirectRequest:
    """What the direct path reads of a request: ``header(name)`` (lower-case name,
    ``None`` when absent), the body, the origin it was sent to (``base_url``, ending in
    ``/``) and the client (for the throttle of failed authentication)."""

    header: Callable[[str], str | None]
    body: bytes
    base_url: str
    client: str


@dataclass(frozen=True)
class DirectAnswer:
    """A response. With ``image`` (``b64_json``) the body is ``prefix``, the image in
    base64, then ``suffix``; otherwise ``prefix`` is the whole body."""

    status: int
    headers: dict[str, str]
    prefix: str
    suffix: str = ""
    image: ImageBytes | None = None


def may_be_direct(method: str, path: str, header: Callable[[str], str | None]) -> bool:
    """Whether a request is worth offering to :class:`DirectPath`, from its head alone."""
    if method != "POST" or path != PATH or media_type(header("content-type")) != "application/json":
        return False
    if header("idempotency-key") is not None:  # the route claims, waits and replays
        return False
    declared = declared_length(header("content-length"))
    return declared is not None and declared <= MAX_DIRECT_BODY


def _json(content: dict[str, Any]) -> str:
    """As the route's ``JSONResponse`` renders it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _error(error: ApiError) -> DirectAnswer:
    headers = {name.lower(): value for name, value in error.headers.items()}
    return DirectAnswer(
        error.status, {**headers, "content-type": "application/json"}, error.to_json()
    )


@dataclass(frozen=True)
class _Admitted:
    """A request past every check that may still decline it."""

    principal: Principal
    body: GenerationRequest
    run: Callable[[], Awaitable[Outcome]]
    variants: tuple[Variant, ...] = ()


class DirectPath:
    def __init__(self, attempts: FailedAttempts) -> None:
        self._attempts = attempts

    async def answer(self, gw: Gateway, request: DirectRequest) -> DirectAnswer | None:
        try:
            admitted = await self._admit(gw, request)
        except ApiError:  # a refusal is the route's to answer, audit and count
            return None
        except Exception as exc:  # so is a fault (the route logs it as it happens again)
            log.warning("the direct path declined on %s", type(exc).__name__)
            return None
        if admitted is None:
            return None
        try:
            outcome = await admitted.run()
            return self._present(gw, outcome, admitted, request.base_url)
        except ApiError as error:
            audit_refusal(
                error,
                principal=admitted.principal,
                prompt=audit_prompt(admitted.body.prompt, gw.settings.max_prompt_length),
                include_prompt=gw.settings.audit_log_prompts,
                path=PATH,
            )
            return _error(error)
        except Exception:
            log.exception("unhandled error")
            return _error(INTERNAL_ERROR)

    async def _admit(self, gw: Gateway, request: DirectRequest) -> _Admitted | None:
        """Everything that may decline, in the route's order; the generation to run."""
        header = request.header
        authorization = header("authorization")
        if authorization is None or "respond-async" in (header("prefer") or "").lower():
            return None
        self._attempts.check(request.client, gw.clock())
        principal = await gw.authenticate(authorization)
        principal.require(SCOPE_GENERATE)
        body, references = parse_json_generation(
            request.body, gw.settings.max_reference_image_bytes
        )
        if body.run_async or body.webhook_url is not None:
            return None
        params = resolved_params(body, references, gw)
        variants = requested_variants(body, gw)
        principal = principal.as_end_user(body.end_user)
        admission = await gw.generator.admit(principal, params)
        if admission.moderation != "off":  # moderation calls a model before answering
            return None
        mode = CacheMode.from_header(header("cache-control"))
        want_bytes = body.response_format == "b64_json"

        def run() -> Awaitable[Outcome]:
            return gw.generator.serve(admission, params, mode, want_bytes=want_bytes)

        return _Admitted(principal, body, run, variants)

    @staticmethod
    def _present(gw: Gateway, outcome: Outcome, admitted: _Admitted, base_url: str) -> DirectAnswer:
        body = admitted.body
        image = outcome.image if body.response_format == "b64_json" else None
        generation = presenter(gw).generation(
            outcome.record,
            base_url=base_url,
            cached=outcome.cache == "HIT",
            url_ttl=body.url_ttl_seconds,
            b64_json=_b64_mark() if image is not None else None,
            variants=admitted.variants,
        )
        headers = {
            "content-type": "application/json",
            **{k.lower(): v for k, v in generation_answered(outcome).items()},
        }
        text = _json(generation.to_json())
        if image is None:
            return DirectAnswer(200, headers, text)
        prefix, suffix = text.split(_b64_mark(), 1)
        return DirectAnswer(200, headers, prefix, suffix, image)


def one_authorization(scope: Any) -> Any:
    """``scope`` with its repeated ``Authorization`` headers joined into one, as the
    Worker's request has them (the Fetch standard joins with ``", "``): a request with two
    credentials is refused for an invalid one on both runtimes, never authenticated by
    whichever comes first. Done here, in front of the app, so that the direct path and the
    routes' dependencies read the same single value."""
    values = [v for k, v in scope["headers"] if k == b"authorization"]
    others = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
    return {**scope, "headers": [*others, (b"authorization", b", ".join(values))]}


class DirectMiddleware:
    """:class:`DirectPath` in front of the app under ASGI (the local server). The body is
    read once; a request the direct path declines reaches the app with the same body. It
    is also where the local server's request joins a repeated ``Authorization`` as the
    Worker's does (:func:`one_authorization`)."""

    def __init__(
        self, app: Any, *, direct: DirectPath, resolve: Resolver, client_address: ClientAddress
    ) -> None:
        self._app = app
        self._direct = direct
        self._resolve = resolve
        self._client_address = client_address

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.requests import Request

        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        headers = request.headers
        if len(headers.getlist("authorization")) > 1:
            scope = one_authorization(scope)
            request = Request(scope, receive)
            headers = request.headers
        if not may_be_direct(scope["method"], scope["path"], headers.get):
            await self._app(scope, receive, send)
            return
        body = await request.body()
        resolved = self._resolve(request)
        gw: Gateway = await resolved if hasattr(resolved, "__await__") else resolved
        asked = DirectRequest(
            headers.get, body, str(request.base_url), self._client_address(request)
        )
        answer = await self._direct.answer(gw, asked)
        if answer is None:
            await self._app(scope, _replay(body, receive), send)
            return
        content = answer.prefix
        if answer.image is not None:
            content += await answer.image.base64() + answer.suffix
        payload = content.encode()
        raw = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        raw.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": answer.status, "headers": raw})
        await send({"type": "http.response.body", "body": payload})


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
