"""The hit path: a cached generation answered without the web framework.

A cache hit is the request this API exists to make cheap, and on Workers CPU per request
is what users pay for: routing, dependency resolution and the ASGI bridge cost more than
the hit itself. So a JSON ``POST /v1/images/generations`` is first offered to
:class:`HitPath`, which runs the route's own steps (:func:`parse_json_generation`,
:func:`check_model`, the generator's admission and cache lookup, the presenter) and
answers only a hit. Anything else (a miss, an async request, any refusal, a credential
that does not check out) returns ``None`` *before any side effect*, and the request goes
to the FastAPI route, which answers it exactly as it always has: same validation, same
errors, same audit lines and failed-attempt counting. The only cost of declining is the
work done so far (on a miss, one KV read of the cache entry).

Both runtimes use it: the local server as ASGI middleware (:class:`HitMiddleware`), the
Worker before the ASGI bridge (``edge/app.py``), with the request read once.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..auth import SCOPE_GENERATE
from ..cache import CacheMode
from ..errors import ApiError
from ..gateway import Gateway
from ..image_bytes import ImageBytes
from ..ratelimit import FailedAttempts
from .images import check_model
from .request_body import declared_length, generation_params, media_type, parse_json_generation

log = logging.getLogger("fluxgate.hits")

PATH = "/v1/images/generations"
# A hit's body is a few hundred bytes; larger bodies (reference images) go to the route.
MAX_HIT_BODY = 16 * 1024
# Stands for the base64 of the image in a b64_json body until the runtime splices it in:
# random, so no value a client chose (a prompt, an end-user id) can contain it.
_B64_MARK = secrets.token_hex(16)


@dataclass(frozen=True)
class HitRequest:
    """What the hit path reads of a request: ``header(name)`` (lower-case name, ``None``
    when absent), the body, the origin it was sent to, and the client (for the throttle of
    failed authentication)."""

    header: Callable[[str], str | None]
    body: bytes
    base_url: str
    client: str


@dataclass(frozen=True)
class HitAnswer:
    """A 200 with a generation. With ``image`` (``b64_json``), the body is ``prefix``,
    the image in base64, then ``suffix``; otherwise ``prefix`` is the whole body."""

    headers: dict[str, str]
    prefix: str
    suffix: str = ""
    image: ImageBytes | None = None


def may_be_a_hit(method: str, path: str, header: Callable[[str], str | None]) -> bool:
    """Whether a request is worth offering to :class:`HitPath`, from its head alone."""
    if method != "POST" or path != PATH or media_type(header("content-type")) != "application/json":
        return False
    declared = declared_length(header("content-length"))
    return declared is not None and declared <= MAX_HIT_BODY


def _render(content: dict[str, Any]) -> str:
    """As the route's ``JSONResponse`` renders it."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class HitPath:
    def __init__(self, attempts: FailedAttempts) -> None:
        self._attempts = attempts

    async def answer(self, gw: Gateway, request: HitRequest) -> HitAnswer | None:
        try:
            return await self._answer(gw, request)
        except ApiError:  # a refusal is the route's to answer, audit and count
            return None
        except Exception as exc:  # so is a fault; it is worth knowing about
            log.warning("the hit path declined on %s", type(exc).__name__, exc_info=True)
            return None

    async def _answer(self, gw: Gateway, request: HitRequest) -> HitAnswer | None:
        header = request.header
        authorization = header("authorization")
        if authorization is None or "respond-async" in (header("prefer") or "").lower():
            return None
        if CacheMode.from_header(header("cache-control")) is not CacheMode.NORMAL:
            return None
        self._attempts.check(request.client, gw.clock())
        principal = await gw.authenticate(authorization)
        principal.require(SCOPE_GENERATE)
        body, references = parse_json_generation(
            request.body, gw.settings.max_reference_image_bytes
        )
        if body.run_async or body.webhook_url is not None:
            return None
        check_model(body.model, gw)
        params = generation_params(body, references, gw.model_name)
        admission = await gw.generator.admit(principal.as_end_user(body.end_user), params)
        if admission.moderation != "off":  # a late moderation may call the model: the route's
            return None
        want_bytes = body.response_format == "b64_json"
        hit = await gw.generator.cached(admission, params, want_bytes=want_bytes)
        if hit is None:
            return None
        generation = gw.presenter.generation(
            hit.record,
            base_url=request.base_url,
            cached=True,
            url_ttl=body.url_ttl_seconds,
            b64_json=_B64_MARK if want_bytes else None,
        )
        headers = {
            "content-type": "application/json",
            "x-cache": "HIT",
            "x-fluxgate-model": gw.model_name,
            "cache-control": "no-store",
        }
        text = _render(generation.to_json())
        if not want_bytes:
            return HitAnswer(headers, text)
        prefix, suffix = text.split(_B64_MARK, 1)
        return HitAnswer(headers, prefix, suffix, hit.image)


Resolver = Callable[[Any], Gateway | Awaitable[Gateway]]
ClientAddress = Callable[[Any], str]


class HitMiddleware:
    """:class:`HitPath` in front of the app under ASGI (the local server). The body is
    read once; a request the hit path declines reaches the app with the same body."""

    def __init__(
        self, app: Any, *, hits: HitPath, resolve: Resolver, client_address: ClientAddress
    ) -> None:
        self._app = app
        self._hits = hits
        self._resolve = resolve
        self._client_address = client_address

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.requests import Request

        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive)
        headers = request.headers
        if not may_be_a_hit(scope["method"], scope["path"], headers.get):
            await self._app(scope, receive, send)
            return
        body = await request.body()
        resolved = self._resolve(request)
        gw: Gateway = await resolved if hasattr(resolved, "__await__") else resolved
        hit = HitRequest(headers.get, body, str(request.base_url), self._client_address(request))
        answer = await self._hits.answer(gw, hit)
        if answer is None:
            await self._app(scope, _replay(body, receive), send)
            return
        content = answer.prefix
        if answer.image is not None:
            content += await answer.image.base64() + answer.suffix
        payload = content.encode()
        raw = [(k.encode(), v.encode()) for k, v in answer.headers.items()]
        raw.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": raw})
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
