"""Image routes: generate (synchronously or as a job), edit, read, list or delete generations.

Generating and editing are thin wrappers of the one generation handler (``api/generate.py``);
this module gives them their OpenAPI description.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ...access.auth import SCOPE_GENERATE, SCOPE_READ
from ...delivery.variants import unavailable, variants_query
from ...listings.catalog import IMAGE
from ..deps import ADMIN_ERRORS, ERRORS, Admin, Caller, Gw, error_responses, gateway
from ..generate import GenerationHandler
from ..listing import DEFAULT_LIMIT, LISTING_ERRORS, Cursor, EndUser, Limit, listing
from ..present import presenter
from ..schemas import Generation, GenerationRequest, ImageList, JobBody
from ..starlette_view import request_view, response

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


_IDEMPOTENCY: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "Retry safely: the same key with the same request within 24 h "
            "replays the first answer (`Idempotent-Replayed: true`), with no model call, "
            "charge or job; with another request, `422 idempotency_key_reused`; while the "
            "first still runs, the retry waits for it (up to 30 s, then "
            "`409 idempotency_key_in_progress`). Scoped to the caller. 1-255 printable ASCII. "
            "Each API key keeps at most IDEMPOTENCY_MAX_KEYS keys (and IDEMPOTENCY_MAX_BYTES) "
            "for 24 h: past that, a new key is `429 idempotency_keys_exhausted` (Retry-After). "
            "A request killed mid-generation and retried with its key is charged once.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255},
        }
    ]
}
_IDEMPOTENCY_ERRORS = error_responses(
    {
        409: "A request with this Idempotency-Key is still running (Retry-After)",
        422: "output_rejected: output moderation refused the generated image (charged; "
        "category, categories); or idempotency_key_reused: this Idempotency-Key was used "
        "for a different request",
        501: "Idempotency-Key, async generations or variants are not available on this deployment",
    }
)

# The generation routes resolve gateway and caller themselves (in the handler) rather than
# through FastAPI's dependency injection: they are the hot path (a cache hit), and DI costs
# ~0.2 ms a request.
_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


@router.post(
    "/v1/images/generations",
    response_model=Generation,
    openapi_extra={**GENERATION_BODY, **_BEARER, **_IDEMPOTENCY},
    summary="Generate an image (or return the cached one); async with a job and webhook",
    responses={
        **ERRORS,
        **_IDEMPOTENCY_ERRORS,
        202: {"model": JobBody, "description": "Accepted as an async job"},
    },
)
async def generate(request: Request) -> Response:
    return await _handled(request)


@router.post(
    "/v1/images/edits",
    response_model=Generation,
    responses={**ERRORS, **_IDEMPOTENCY_ERRORS},
    openapi_extra={**EDIT_BODY, **_BEARER, **_IDEMPOTENCY},
    summary="OpenAI-style edit: generate from up to 4 reference images (`image` parts)",
)
async def edit(request: Request) -> Response:
    return await _handled(request)


async def _handled(request: Request) -> Response:
    """The request answered by the one generation handler (``api/generate.py``), which the
    fast path in front of the app calls too."""
    gw = await gateway(request)
    handler: GenerationHandler = request.app.state.generations
    view = request_view(request, request.app.state.client_address(request))
    return await response(await handler.handle(gw, view))


_VARIANTS_QUERY = Query(
    max_length=256,
    description="Variants to sign URLs for, comma-separated (e.g. `256.webp,512.avif`): "
    "answered in `data[0].variants`.",
)


@router.get(
    "/v1/images/{image_id}",
    response_model=Generation,
    responses={**ERRORS, **error_responses({501: "Variants are not available here"})},
    summary="A generation's metadata, with a freshly signed URL (and variant URLs)",
)
async def get_image(
    request: Request,
    image_id: str,
    gw: Gw,
    principal: Caller,
    variants: Annotated[str | None, _VARIANTS_QUERY] = None,
) -> JSONResponse:
    principal.require(SCOPE_READ)
    wanted = variants_query(variants)
    if wanted and gw.variants is None:
        raise unavailable()
    record = await gw.generator.record(image_id, principal)
    body = presenter(gw).generation(
        record, base_url=str(request.base_url), cached=False, variants=wanted
    )
    return JSONResponse(body.to_json(), headers={"Cache-Control": "no-store"})


@router.get(
    "/v1/images",
    response_model=ImageList,
    responses={**ERRORS, **LISTING_ERRORS},
    summary="Your generations (an API key: its end users' too), newest first, paged",
)
async def list_images(
    request: Request,
    gw: Gw,
    principal: Caller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user: EndUser = None,
) -> JSONResponse:
    principal.require(SCOPE_READ)
    principal = principal.as_end_user(user)
    return await listing(request, gw, IMAGE, principal.key.id, principal.subject, limit, cursor)


class ImageDeleted(BaseModel):
    """The answer to a deletion (OpenAI's shape for deleted objects)."""

    id: str
    object: str = "image"
    deleted: bool = True


_DELETE_ERRORS = error_responses(
    {
        404: "No such image: never made, already deleted, or not the caller's",
        503: "deletion_incomplete: a store failed part way (Retry-After); retry the DELETE",
    }
)


@router.delete(
    "/v1/images/{image_id}",
    response_model=ImageDeleted,
    responses={**ERRORS, **_DELETE_ERRORS},
    summary="Delete a generation: its image, variants, cache entry, listing row and record",
)
async def delete_image(image_id: str, gw: Gw, principal: Caller) -> JSONResponse:
    """The caller's own generation (an API key: its end users' too; a client token: its
    end user's only). Deleting is writing: it needs ``images:generate``. Every signed URL
    of the image answers 404 afterwards; a second DELETE answers 404 too."""
    principal.require(SCOPE_GENERATE)
    record = await gw.generator.delete(image_id, principal)
    return _deleted(record.id)


@router.delete(
    "/v1/admin/images/{image_id}",
    response_model=ImageDeleted,
    tags=["admin"],
    responses={**ADMIN_ERRORS, **_DELETE_ERRORS},
    summary="Delete any key's generation (audited)",
)
async def admin_delete_image(image_id: str, gw: Gw, actor: Admin) -> JSONResponse:
    record = await gw.generator.delete(image_id, None)
    actor.audit("image.delete", target=record.id, owner=record.owner)
    return _deleted(record.id)


def _deleted(image_id: str) -> JSONResponse:
    body = ImageDeleted(id=image_id).model_dump()
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
