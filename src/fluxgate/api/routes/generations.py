"""Image routes: generate (synchronously or as a job), edit, read, list or delete generations."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from ...access.auth import SCOPE_GENERATE, SCOPE_READ, Principal
from ...delivery.variants import Variant, parse_variants, unavailable, variants_query
from ...errors import ApiError
from ...listings.catalog import IMAGE
from ...model.params import GenerationParams, ReferenceImage
from ...policy.prompts import audit_prompt
from ...request_context import note_generation
from ...service.controls import retry_hold
from ...service.gateway import Gateway
from ...service.generation import Outcome
from ...service.idempotency import checked_key, fingerprint
from ...store.answers import StoredResponse
from ...store.cache_keys import CacheMode
from ..deps import ADMIN_ERRORS, ERRORS, Admin, Caller, Gw, authenticated, error_responses, gateway
from ..idempotent import Answer, idempotently, replayed, response
from ..listing import DEFAULT_LIMIT, LISTING_ERRORS, Cursor, EndUser, Limit, listing
from ..present import presenter
from ..request_body import generation_params, parse_generation, requested_model
from ..schemas import Generation, GenerationRequest, ImageList, JobBody

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


def resolved_params(
    body: GenerationRequest, references: tuple[ReferenceImage, ...], gw: Gateway
) -> GenerationParams:
    """The request's model and parameters (this route's and the direct path's)."""
    spec = requested_model(body, gw.find_model)
    return generation_params(body, references, spec, gw.served_name(spec))


def requested_variants(body: GenerationRequest, gw: Gateway) -> tuple[Variant, ...]:
    """The variants a request asks for (this route's and the direct path's): validated
    (``400 invalid_variant``), repeats dropped, and refused with ``501
    variants_unavailable`` where they could not be made, before anything is generated."""
    variants = parse_variants(body.variants or ())
    if variants and gw.variants is None:
        raise unavailable()
    return variants


async def _generate(request: Request, gw: Gateway, principal: Principal, *, edit: bool) -> Response:
    principal.require(SCOPE_GENERATE)
    body, references = await parse_generation(
        request,
        max_body=gw.settings.max_body_bytes,
        max_image=gw.settings.max_reference_image_bytes,
        edit=edit,
    )
    params = resolved_params(body, references, gw)
    variants = requested_variants(body, gw)
    principal = principal.as_end_user(body.end_user)
    request.state.principal = principal
    # for the audit log of refusals: raw and bounded; the policy normalises it, once
    request.state.prompt = audit_prompt(body.prompt, gw.settings.max_prompt_length)
    mode = CacheMode.from_header(request.headers.get("cache-control"))
    prefer_async = "respond-async" in request.headers.get("prefer", "").lower()

    key = request.headers.get("idempotency-key")
    # A retry of a request that died takes its charge over (the same hold), so the two are
    # charged once; without the header each request holds its own.
    hold = None if key is None else retry_hold(principal.scope_id, checked_key(key))

    async def answer() -> Answer:
        if body.run_async or prefer_async:
            hook = body.webhook_url
            return await _submit(request, gw, principal, params, mode, hook, prefer_async, variants)
        return await _sync(request, gw, principal, params, mode, body, variants, hold)

    if key is None:
        return response(await answer())
    asked = {
        "response_format": body.response_format,
        "url_ttl_seconds": body.url_ttl_seconds,
        "async": body.run_async or prefer_async,
        "webhook_url": body.webhook_url,
        "cache": mode.value,
        "variants": [v.name for v in variants],
    }
    request_hash = fingerprint("edits" if edit else "generations", params, asked)
    begun = await gw.idempotency.begin(principal, checked_key(key), request_hash)
    if isinstance(begun, StoredResponse):
        return await replayed(gw, begun)
    return await idempotently(gw, begun, answer)


async def _sync(
    request: Request,
    gw: Gateway,
    principal: Principal,
    params: GenerationParams,
    mode: CacheMode,
    body: GenerationRequest,
    variants: tuple[Variant, ...],
    hold: str | None,
) -> Answer:
    if body.webhook_url is not None:
        raise ApiError(
            400,
            "webhook_requires_async",
            "webhook_url needs an async request ('async': true or 'Prefer: respond-async').",
            param="webhook_url",
        )
    want_bytes = body.response_format == "b64_json"
    outcome = await gw.generator.generate(principal, params, mode, want_bytes=want_bytes, hold=hold)
    image = outcome.image if want_bytes else None
    generation = presenter(gw).generation(
        outcome.record,
        base_url=str(request.base_url),
        cached=outcome.cache == "HIT",
        url_ttl=body.url_ttl_seconds,
        b64_json=await image.base64() if image is not None else None,
        variants=variants,
    )
    return Answer(
        200,
        generation.to_json(),
        generation_answered(outcome),
        outcome.record.object_key if image is not None else None,
    )


def generation_answered(outcome: Outcome) -> dict[str, str]:
    """A synchronous generation's headers (this route's and the direct path's), its facts
    noted for the request's access-log line. A model-bound answer tells the client how it
    stands against its rate limit (``RateLimit-*``, as far as the runtime knows)."""
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

# The generation routes resolve gateway and caller themselves rather than through FastAPI's
# dependency injection: they are the hot path (a cache hit), and DI costs ~0.2 ms a request.
_BEARER: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


async def _submit(
    request: Request,
    gw: Gateway,
    principal: Principal,
    params: GenerationParams,
    mode: CacheMode,
    webhook_url: str | None,
    prefer_async: bool,
    variants: tuple[Variant, ...],
) -> Answer:
    if gw.jobs is None:
        raise ApiError(501, "async_unavailable", "Async generations are not configured here.")
    base_url = str(request.base_url)
    job, pace = await gw.jobs.submit(
        principal, params, mode, webhook_url, base_url=base_url, variants=variants
    )
    body = presenter(gw).job(job, base_url)
    headers = {"Location": body["status_url"], "Cache-Control": "no-store", **pace}
    if prefer_async:
        headers["Preference-Applied"] = "respond-async"
    if not job.done:
        headers["Retry-After"] = "2"
    return Answer(202, body, headers)


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
    gw = await gateway(request)
    return await _generate(request, gw, await authenticated(request, gw), edit=False)


@router.post(
    "/v1/images/edits",
    response_model=Generation,
    responses={**ERRORS, **_IDEMPOTENCY_ERRORS},
    openapi_extra={**EDIT_BODY, **_BEARER, **_IDEMPOTENCY},
    summary="OpenAI-style edit: generate from up to 4 reference images (`image` parts)",
)
async def edit(request: Request) -> Response:
    gw = await gateway(request)
    return await _generate(request, gw, await authenticated(request, gw), edit=True)


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
