"""Image routes: generate, read a generation, download through a signed URL."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from . import files
from .api_deps import ERRORS, Caller, Gw
from .auth import SCOPE_GENERATE, SCOPE_READ
from .cache import CacheMode
from .errors import not_found
from .models import ErrorBody, Generation
from .policy import normalize_prompt
from .request_body import parse_generation

router = APIRouter(tags=["images"])

_FORM_FIELDS = (
    "prompt",
    "width",
    "height",
    "steps",
    "guidance",
    "seed",
    "response_format",
    "url_ttl_seconds",
)
GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        **{name: {"type": "string"} for name in _FORM_FIELDS},
                        **{
                            f"input_image_{i}": {"type": "string", "format": "binary"}
                            for i in range(4)
                        },
                    },
                }
            },
        },
    }
}


@router.post(
    "/v1/images/generations",
    response_model=Generation,
    responses=ERRORS,
    openapi_extra=GENERATION_BODY,
    summary="Generate an image (or return the cached one)",
)
async def generate(request: Request, gw: Gw, principal: Caller) -> JSONResponse:
    principal.require(SCOPE_GENERATE)
    params, references = await parse_generation(
        request,
        max_body=gw.settings.max_body_bytes,
        max_image=gw.settings.max_reference_image_bytes,
    )
    request.state.prompt = normalize_prompt(params.prompt)  # for the audit log of refusals
    mode = CacheMode.from_header(request.headers.get("cache-control"))
    outcome = await gw.generate(params, references, principal, mode)
    body = gw.describe(
        outcome.record,
        base_url=str(request.base_url),
        cached=outcome.cache == "HIT",
        url_ttl=params.url_ttl_seconds,
        image=outcome.image if params.response_format == "b64_json" else None,
    )
    return JSONResponse(
        body.to_json(),
        headers={
            "X-Cache": outcome.cache,
            "X-Fluxgate-Model": gw.model.name,
            "Cache-Control": "no-store",
        },
    )


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
    200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
    304: {"description": "Not modified"},
    403: {"model": ErrorBody, "description": "Bad or expired signature"},
    404: {"model": ErrorBody, "description": "No such file"},
}


@router.get(
    "/v1/files/{object_key:path}",
    operation_id="download_file",
    summary="Download an image through its signed URL",
    responses=_FILE_RESPONSES,
)
@router.head(
    "/v1/files/{object_key:path}",
    operation_id="head_file",
    summary="Headers of an image through its signed URL",
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
    if request.method == "HEAD":
        info = await gw.objects.head(key)
        if info is None:
            raise not_found("file")
        headers["Content-Length"] = str(info.size)
        return Response(status_code=200, headers=headers, media_type=info.content_type)
    obj = await gw.objects.get(key)
    if obj is None:
        raise not_found("file")
    headers["Content-Length"] = str(obj.info.size)
    return StreamingResponse(obj.chunks, headers=headers, media_type=obj.info.content_type)
