"""The HTTP API: a FastAPI app over one :class:`Gateway`.

The same app serves both runtimes. It finds its gateway through ``resolve(request)``: the
local runtime passes a fixed one; the Worker builds one from ``env`` on first use.
"""

import base64
import hashlib
import re
import warnings
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..access.audit import audit_refusal
from ..access.rate_limits import FailedAttempts
from ..errors import ApiError, not_found
from ..service.readiness import misconfigured
from . import console
from .asgi_envelope import Envelope
from .body_limit import BodyLimit
from .deps import ClientAddress, Gw, Resolver, error_response, gateway
from .fast_path import FastPathMiddleware
from .generate import GenerationHandler
from .health import HEALTHZ, health
from .reply import JSON
from .request_body import validation_error
from .routes import account, admin, exchange, jobs, provenance, signed_files
from .routes import generations as generation_routes
from .schemas import GenerationRequest, Health, ReadinessCheck
from .schemas import Readiness as ReadinessBody
from .starlette_view import form_parts

# Swagger UI is FastAPI's page: scripts and styles from jsDelivr, one inline script that
# starts it. Served only with API_DOCS=true, under a CSP that allows exactly those.
_SWAGGER_CDN = "https://cdn.jsdelivr.net"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def peer_address(request: Request) -> str:
    """The client as the local server sees it: the TCP peer (never a header a client
    could set)."""
    return request.client.host if request.client else "unknown"


def _docs_page() -> HTMLResponse:
    page = get_swagger_ui_html(openapi_url="/openapi.json", title="Fluxgate API")
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(bytes(page.body).decode())
    )
    csp = (
        f"default-src 'none'; script-src {_SWAGGER_CDN} {hashes}; "
        f"style-src {_SWAGGER_CDN}; img-src 'self' data: https://fastapi.tiangolo.com; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    headers = {**_PAGE_HEADERS, "Content-Security-Policy": csp}
    return HTMLResponse(bytes(page.body).decode(), headers=headers)


_PAGE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
}


def _audit_refusal(request: Request, error: ApiError) -> None:
    gateway = getattr(request.state, "gateway", None)
    audit_refusal(
        error,
        principal=getattr(request.state, "principal", None),
        prompt=None,  # the generation handler audits its own refusals, prompt and all
        include_prompt=bool(gateway and gateway.settings.audit_log_prompts),
        path=request.url.path,
    )


def create_app(
    resolve: Resolver,
    lifespan: Any = None,
    client_address: ClientAddress = peer_address,
    *,
    generations: GenerationHandler | None = None,
    fast_path_in_front: bool = True,
    body_limit_in_front: bool = True,
    envelope_in_front: bool = True,
) -> FastAPI:
    """``lifespan``: the local runtime starts its embedded queue consumer there.
    ``client_address``: who a request comes from, for throttling failed authentication
    (the peer locally, ``CF-Connecting-IP`` on Workers). ``generations``: the generation
    handler (``api/generate.py``) of the generation routes, and its throttle's memory the
    app's; given by a caller that runs the fast path itself (the Worker, before the ASGI
    bridge: ``fast_path_in_front=False``), otherwise made here and put in front of the app
    as well (``api/fast_path.py``). ``body_limit_in_front``: ``MAX_BODY_BYTES`` is
    enforced in front of everything (``api/body_limit.py``), as the Worker does it before
    its ASGI bridge (``False`` there). ``envelope_in_front``: the request id, CORS and
    access log layer (``api/asgi_envelope.py``) runs here, outermost; the Worker runs it in
    JS around all of its paths instead (``False``)."""
    app = FastAPI(
        title="Fluxgate",
        version=__version__,
        description="Edge image generation with FLUX.2 [dev]: cached, signed, per-key.",
        lifespan=lifespan,
        docs_url=None,  # /docs is served below, only when API_DOCS is on
        redoc_url=None,  # ReDoc needs more third-party code (fonts, workers): not served
    )

    app.state.resolve = resolve
    app.state.client_address = client_address
    if generations is None:
        generations = GenerationHandler(FailedAttempts(), form_parts)
    app.state.generations = generations
    app.state.failed_attempts = generations.attempts
    if fast_path_in_front:
        app.add_middleware(
            FastPathMiddleware,
            generations=generations,
            resolve=resolve,
            client_address=client_address,
        )
    if body_limit_in_front:  # in front of the fast path, as the Worker checks bodies
        app.add_middleware(BodyLimit, resolve=resolve)
    # Added after the API's other layers, so every API response leaves through it (the
    # console's static files, added below, sit in front of it as Cloudflare's assets do).
    app.add_middleware(Envelope, resolve=resolve, outermost=envelope_in_front)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        _audit_refusal(request, exc)
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        error = validation_error(exc.errors())
        _audit_refusal(request, error)
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not parse a JSON body (bytes, depth, …)
            return error_response(
                ApiError(400, "invalid_json", "The body must be a valid JSON object.")
            )
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(
            ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        """Not a handler: Starlette's last resort would answer a plain-text 500 itself.
        Raised on, a fault reaches the runtime's one catch-all (the envelope, the ASGI
        one locally, the JS one around the bridge on Workers), which logs and answers it."""
        raise exc

    # Probed constantly: no dependency injection and no response-model pass; the body is
    # still a Health. The Worker answers it in front of its ASGI bridge (api/health.py).
    @app.get(HEALTHZ, response_model=Health, tags=["meta"])
    async def healthz(request: Request) -> Response:
        reply = health(await gateway(request))
        return Response(reply.prefix, status_code=reply.status, media_type=JSON)

    @app.get(
        "/readyz",
        response_model=ReadinessBody,
        responses={503: {"model": ReadinessBody, "description": "A dependency is not ready"}},
        tags=["meta"],
        summary="Readiness: configuration, and KV, R2 and the model reachable",
    )
    async def readyz(request: Request) -> JSONResponse:
        try:
            gw = await gateway(request)
        except ApiError:  # settings or secrets that do not validate
            checks, model, credentials, warned = misconfigured(), None, None, None
        else:
            checks, model = await gw.readiness.checks(), gw.model_name
            credentials = gw.readiness.content_credentials
            warned = gw.readiness.warnings() or None
        ready = all(check.ok for check in checks.values())
        body = ReadinessBody(
            status="ready" if ready else "unready",
            model=model,
            checks={n: ReadinessCheck(ok=c.ok, ms=c.ms, error=c.error) for n, c in checks.items()},
            content_credentials=credentials,
            warnings=warned,
        )
        return JSONResponse(
            body.model_dump(exclude_none=True),
            status_code=200 if ready else 503,
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/docs", include_in_schema=False)
    async def docs_page(gw: Gw) -> HTMLResponse:
        if not gw.settings.api_docs:
            raise not_found("page")
        return _docs_page()

    # The console (/, /console, /playground and its files) is static (``console.py``): on
    # Workers Cloudflare's asset server answers it in front of the Worker; here the same
    # files answer in front of the whole app (added last: outermost, before the envelope).
    site = console.load()
    if site is not None:
        app.add_middleware(console.StaticConsole, site=site)

    for module in (generation_routes, signed_files, account, exchange, jobs, provenance, admin):
        app.include_router(module.router)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    return app


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, corrected to what the API really does.

    Validation errors are 400 (never FastAPI's 422); the generation body's JSON schema is
    added to the components (the route reads its body itself); the file route serves GET
    and HEAD from one route, so its HEAD operation gets its own id.
    """
    if app.openapi_schema:
        return app.openapi_schema
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    generation = GenerationRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(generation.pop("$defs", {}))
    components["GenerationRequest"] = generation
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            if "HTTPValidationError" in str(responses.get("422", "")):  # FastAPI's, not ours
                responses.pop("422")
            if method == "head":
                operation["operationId"] = operation.get("operationId", path) + "_head"
                operation["responses"].get("200", {}).pop("content", None)
    app.openapi_schema = schema
    return schema
