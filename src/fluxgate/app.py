"""The HTTP API: a FastAPI app over one :class:`Gateway`.

The same app serves both runtimes. It finds its gateway through ``resolve(request)``: the
local runtime passes a fixed one; the Worker builds one from ``env`` on first use.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__, files
from .auth import KeyRecord, check_admin
from .cache import CacheMode
from .errors import ApiError, not_found
from .models import (
    ErrorBody,
    Generation,
    Health,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
)
from .pipeline import Gateway
from .request_body import parse_generation, validation_error

log = logging.getLogger("fluxgate.app")

Resolver = Callable[[Request], Gateway | Awaitable[Gateway]]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer fgk_...`")
_admin = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token (`ADMIN_TOKEN` secret).",
)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        400: "Invalid request or prompt policy violation",
        401: "Missing, unknown or revoked API key",
        413: "Body or reference image too large",
        415: "Unsupported content type",
        429: "Upstream rate limit",
        502: "Model failure",
        503: "Model out of capacity or storage unavailable",
        504: "Model timeout",
    }.items()
}

_GENERATION_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/GenerationRequest"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        **{
                            name: {"type": "string"}
                            for name in (
                                "prompt",
                                "width",
                                "height",
                                "steps",
                                "guidance",
                                "seed",
                                "response_format",
                                "url_ttl_seconds",
                            )
                        },
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


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers=error.headers)


def create_app(resolve: Resolver) -> FastAPI:
    app = FastAPI(
        title="Fluxgate",
        version=__version__,
        description="Edge image generation with FLUX.2 [dev]: cached, signed, per-key.",
    )

    async def gateway(request: Request) -> Gateway:
        result = resolve(request)
        return await result if isinstance(result, Awaitable) else result

    Gw = Annotated[Gateway, Depends(gateway)]

    async def caller(
        request: Request,
        gw: Gw,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> KeyRecord:
        return await gw.keys.authenticate(request.headers.get("authorization"))

    async def admin(
        request: Request,
        gw: Gw,
        _: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin)],
    ) -> None:
        check_admin(request.headers.get("authorization"), gw.admin_token)

    Caller = Annotated[KeyRecord, Depends(caller)]

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(validation_error(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(
            ApiError(exc.status_code, code, str(exc.detail), headers=dict(exc.headers or {}))
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(ApiError(500, "internal_error", "Internal error."))

    @app.get("/healthz", response_model=Health, tags=["meta"])
    async def healthz(gw: Gw) -> Health:
        return Health(model=gw.model.name, version=__version__)

    @app.post(
        "/v1/images/generations",
        response_model=Generation,
        responses=_ERRORS,
        openapi_extra=_GENERATION_BODY,
        tags=["images"],
        summary="Generate an image (or return the cached one)",
    )
    async def generate(request: Request, gw: Gw, owner: Caller) -> JSONResponse:
        params, references = await parse_generation(
            request,
            max_body=gw.settings.max_body_bytes,
            max_image=gw.settings.max_reference_image_bytes,
        )
        mode = CacheMode.from_header(request.headers.get("cache-control"))
        outcome = await gw.generate(params, references, owner, mode)
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

    @app.get(
        "/v1/images/{image_id}",
        response_model=Generation,
        responses=_ERRORS,
        tags=["images"],
        summary="A generation's metadata, with a freshly signed URL",
    )
    async def get_image(request: Request, image_id: str, gw: Gw, owner: Caller) -> JSONResponse:
        record = await gw.get_record(image_id, owner)
        body = gw.describe(record, base_url=str(request.base_url), cached=False)
        return JSONResponse(body.to_json(), headers={"Cache-Control": "no-store"})

    file_responses: dict[int | str, dict[str, Any]] = {
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        304: {"description": "Not modified"},
        403: {"model": ErrorBody, "description": "Bad or expired signature"},
        404: {"model": ErrorBody, "description": "No such file"},
    }

    @app.get(
        "/v1/files/{object_key:path}",
        tags=["images"],
        operation_id="download_file",
        summary="Download an image through its signed URL",
        responses=file_responses,
    )
    @app.head(
        "/v1/files/{object_key:path}",
        tags=["images"],
        operation_id="head_file",
        summary="Headers of an image through its signed URL",
        responses=file_responses,
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

    @app.post(
        "/v1/admin/keys",
        status_code=201,
        response_model=KeyCreated,
        tags=["admin"],
        dependencies=[Depends(admin)],
        summary="Create an API key (shown once)",
    )
    async def create_key(body: KeyCreate, gw: Gw) -> JSONResponse:
        token, record = await gw.keys.create(body.name)
        return JSONResponse(
            {**record.public(), "key": token},
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @app.get(
        "/v1/admin/keys",
        response_model=KeyList,
        tags=["admin"],
        dependencies=[Depends(admin)],
        summary="List API keys (never the keys themselves)",
    )
    async def list_keys(gw: Gw) -> KeyList:
        return KeyList(data=[KeyInfo(**r.public()) for r in await gw.keys.list()])

    @app.post(
        "/v1/admin/keys/{key_id}/revoke",
        response_model=KeyInfo,
        tags=["admin"],
        dependencies=[Depends(admin)],
        summary="Revoke an API key",
    )
    async def revoke_key(key_id: str, gw: Gw) -> KeyInfo:
        return KeyInfo(**(await gw.keys.revoke(key_id)).public())

    return app
