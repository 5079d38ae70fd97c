"""Image routes: generate, read a generation, download through a signed URL."""

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from . import FLUX_MODEL_ID, files
from .api_deps import ERRORS, Caller, Gw, authenticated, gateway
from .auth import SCOPE_GENERATE, SCOPE_READ, Principal
from .cache import CacheMode
from .errors import ApiError, not_found
from .model import ReferenceImage
from .models import ErrorBody, Generation, GenerationRequest, JobBody
from .pipeline import Gateway
from .policy import audit_prompt
from .request_body import parse_generation

log = logging.getLogger("fluxgate.api")
router = APIRouter(tags=["images"], responses=ERRORS)


def form_schema(files: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """The multipart twin of :class:`GenerationRequest`'s JSON schema: the same fields and
    constraints (form values are text, parsed as their JSON types), reference images as
    file parts."""
    schema = GenerationRequest.model_json_schema()
    properties: dict[str, Any] = {}
    for name, prop in schema["properties"].items():
        if name.startswith("input_image_"):
            continue
        variants = [v for v in prop.get("anyOf", []) if v.get("type") != "null"]
        if len(variants) == 1:
            prop = {
                **{k: v for k, v in prop.items() if k not in ("anyOf", "default")},
                **variants[0],
            }
        properties[name] = prop
    return {"type": "object", "required": required, "properties": {**properties, **files}}


_BINARY = {"type": "string", "format": "binary"}
GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}},
            "multipart/form-data": {
                "schema": form_schema({f"input_image_{i}": _BINARY for i in range(4)}, ["prompt"])
            },
        },
    }
}
EDIT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": form_schema(
                    {"image": {"type": "array", "minItems": 1, "maxItems": 4, "items": _BINARY}},
                    ["prompt", "image"],
                )
            }
        },
    }
}


MODEL_ALIASES = {FLUX_MODEL_ID, "flux-2-dev", "black-forest-labs/flux-2-dev"}


def check_model(requested: str | None, gw: Gateway) -> None:
    if requested is not None and requested not in MODEL_ALIASES | {gw.model.name}:
        raise ApiError(
            400,
            "model_not_found",
            f"The model '{requested}' is not served here; use '{FLUX_MODEL_ID}'.",
            param="model",
        )


async def _generate(
    request: Request, gw: Gateway, principal: Principal, *, edit: bool
) -> JSONResponse:
    principal.require(SCOPE_GENERATE)
    params, references = await parse_generation(
        request,
        max_body=gw.settings.max_body_bytes,
        max_image=gw.settings.max_reference_image_bytes,
        edit=edit,
    )
    check_model(params.model, gw)
    principal = principal.as_end_user(params.end_user)
    request.state.principal = principal
    # for the audit log of refusals: raw and bounded; the policy normalises it, once
    request.state.prompt = audit_prompt(params.prompt, gw.settings.max_prompt_length)
    mode = CacheMode.from_header(request.headers.get("cache-control"))
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()
    if params.run_async or prefer_async:
        return await _submit(request, gw, params, references, principal, mode, prefer_async)
    if params.webhook_url is not None:
        raise ApiError(
            400,
            "webhook_requires_async",
            "webhook_url needs an async request ('async': true or 'Prefer: respond-async').",
            param="webhook_url",
        )
    outcome = await gw.generate(params, references, principal, mode)
    body = gw.describe(
        outcome.record,
        base_url=str(request.base_url),
        cached=outcome.cache == "HIT",
        url_ttl=params.url_ttl_seconds,
        image=outcome.image if params.response_format == "b64_json" else None,
    )
    headers = {
        "X-Cache": outcome.cache,
        "X-Fluxgate-Model": gw.model.name,
        "Cache-Control": "no-store",
    }
    if outcome.model_ms is not None and outcome.cache != "HIT":
        headers["Server-Timing"] = f"model;dur={outcome.model_ms:.1f}"
    return JSONResponse(body.to_json(), headers=headers)


# The generation routes resolve gateway and caller themselves rather than through FastAPI's
# dependency injection: they are the hot path (a cache hit), and DI costs ~0.2 ms a request.
_BEARER = {"security": [{"HTTPBearer": []}]}


async def _submit(
    request: Request,
    gw: Gateway,
    params: GenerationRequest,
    references: tuple[ReferenceImage, ...],
    principal: Principal,
    mode: CacheMode,
    prefer_async: bool,
) -> JSONResponse:
    if gw.jobs is None:
        raise ApiError(501, "async_unavailable", "Async generations are not configured here.")
    job = await gw.jobs.submit(
        params, references, principal, mode, params.webhook_url, base_url=str(request.base_url)
    )
    body = gw.jobs.describe(job, str(request.base_url))
    headers = {"Location": body["status_url"], "Cache-Control": "no-store"}
    if prefer_async:
        headers["Preference-Applied"] = "respond-async"
    if not job.done:
        headers["Retry-After"] = "2"
    return JSONResponse(body, status_code=202, headers=headers)


@router.post(
    "/v1/images/generations",
    response_model=Generation,
    openapi_extra={**GENERATION_BODY, **_BEARER},
    summary="Generate an image (or return the cached one); async with a job and webhook",
    responses={**ERRORS, 202: {"model": JobBody, "description": "Accepted as an async job"}},
)
async def generate(request: Request) -> JSONResponse:
    gw = await gateway(request)
    return await _generate(request, gw, await authenticated(request, gw), edit=False)


@router.post(
    "/v1/images/edits",
    response_model=Generation,
    responses=ERRORS,
    openapi_extra={**EDIT_BODY, **_BEARER},
    summary="OpenAI-style edit: generate from up to 4 reference images (`image` parts)",
)
async def edit(request: Request) -> JSONResponse:
    gw = await gateway(request)
    return await _generate(request, gw, await authenticated(request, gw), edit=True)


@router.get(
    "/v1/images/{image_id}",
    response_model=Generation,
    responses=ERRORS,
    summary="A generation's metadata, with a freshly signed URL",
)
async def get_image(request: Request, image_id: str, gw: Gw, principal: Caller) -> JSONResponse:
    principal.require(SCOPE_READ)
    record = await gw.get_record(image_id, principal)
    body = gw.describe(record, base_url=str(request.base_url), cached=False)
    return JSONResponse(body.to_json(), headers={"Cache-Control": "no-store"})


_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}},
        "description": "The image",
    },
    206: {"description": "Partial content (a `Range` request)"},
    304: {"description": "Not modified"},
    403: {"model": ErrorBody, "description": "Bad or expired signature"},
    404: {"model": ErrorBody, "description": "No such file"},
    405: {"model": ErrorBody, "description": "Only GET and HEAD"},
    416: {"model": ErrorBody, "description": "Range outside the file"},
    503: {"model": ErrorBody, "description": "File access not configured"},
}


files_router = APIRouter(tags=["images"])


@files_router.api_route(
    "/v1/files/{object_key:path}",
    methods=["GET", "HEAD"],
    operation_id="download_file",
    summary="Download an image through its signed URL (GET or HEAD)",
    responses=_FILE_RESPONSES,
)
async def get_file(request: Request, object_key: str, gw: Gw) -> Response:
    now = gw.clock()
    key, expires = files.authorize(
        request.url.path, request.query_params, request.method, gw.signer, now
    )
    headers = files.response_headers(key, expires, now)
    if files.matches_if_none_match(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if request.method == "GET" and not range_header:  # the common case: one storage call
        obj = await gw.objects.get(key)
        if obj is None:
            await _drop_stale_entry(gw, request)
            raise not_found("file")
        headers["Content-Length"] = str(obj.info.size)
        return StreamingResponse(obj.chunks, headers=headers, media_type=obj.info.content_type)
    info = await gw.objects.head(key)
    if info is None:
        await _drop_stale_entry(gw, request)
        raise not_found("file")
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return Response(status_code=200, headers=headers, media_type=info.content_type)
    wanted = files.parse_range(range_header, info.size)
    obj = await gw.objects.get(key, None if wanted is None else (wanted.start, wanted.end))
    if obj is None:
        raise not_found("file")
    if wanted is None:
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(obj.chunks, headers=headers, media_type=info.content_type)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(info.size)
    return StreamingResponse(
        obj.chunks, status_code=206, headers=headers, media_type=info.content_type
    )


async def _drop_stale_entry(gw: Gateway, request: Request) -> None:
    """The object behind a signed URL is gone: drop the cache entry that produced the URL,
    so the next identical request regenerates instead of handing out a dead link."""
    entry = files.signed_cache_entry(request.query_params)
    if entry is not None:
        try:
            await gw.kv.delete(entry)
        except Exception as exc:
            log.warning("could not drop stale cache entry: %s", type(exc).__name__)
