"""``POST /v1/provenance/verify``: "did this deployment generate this image?"

The image is the body, as it is (``Content-Type: image/png``, ``image/jpeg``,
``image/webp``, ``image/avif`` or ``application/octet-stream``) or as the ``image`` part of a
``multipart/form-data`` form. The credential is checked before a byte of it is read: an API
key or client token with ``images:read``, or the admin token. What the answer reveals
depends on who asks: the generation (id, time, model) to its owner and to the admin; to
anyone else only that, and on which day, it was generated here: that an image came from
this service is what the disclosure rules make public; whose it is is not.
"""

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...access.auth import SCOPE_READ, Principal, bearer_token, check_admin
from ...delivery.variants import FORMATS, is_format
from ...errors import ApiError
from ...imaging.image_bytes import InProcessImage
from ...provenance.fingerprint import THRESHOLD
from ...service.gateway import Gateway
from ...service.provenance_log import Verification
from ..deps import ERRORS, authenticated, gateway
from ..request_body import media_type, read_capped, unsupported_media_type
from ..schemas import (
    CredentialsFound,
    FingerprintMatch,
    ProvenanceVerification,
    VerifiedGeneration,
)
from ..starlette_view import form_parts

router = APIRouter(tags=["images"], responses=ERRORS)
VERIFY = "/v1/provenance/verify"
RAW_MEDIA = (*FORMATS.values(), "application/octet-stream")
FORM_MEDIA = "multipart/form-data"

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in RAW_MEDIA},
            FORM_MEDIA: {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


def unavailable() -> ApiError:
    return ApiError(
        501,
        "provenance_unavailable",
        "Provenance checks are not available on this deployment (no provenance index).",
    )


def invalid_image(message: str) -> ApiError:
    return ApiError(400, "invalid_image", message, param="image")


def image_format(head: bytes) -> str:
    """The container of an image the deployment may have made: PNG, JPEG, WebP, AVIF."""
    for fmt in FORMATS:
        if is_format(head, fmt):
            return fmt
    raise invalid_image("The body is not a PNG, JPEG, WebP or AVIF image.")


async def who_asks(request: Request, gw: Gateway) -> Principal | None:
    """The caller (``images:read``), or ``None`` for the admin token; a credential that is
    neither counts as a failed attempt (:func:`authenticated`)."""
    authorization = request.headers.get("authorization")
    if bearer_token(authorization) is not None and check_admin(authorization, gw.admin_token):
        return None
    principal = await authenticated(request, gw)  # none sent: 401 missing_api_key
    principal.require(SCOPE_READ)
    return principal


async def image_of(request: Request, limit: int) -> bytes:
    """The image a request sends, raw or as its form's ``image`` part (``415`` for another
    media type, told before the body is read)."""
    content_type = request.headers.get("content-type")
    media = media_type(content_type)
    if media not in (*RAW_MEDIA, FORM_MEDIA):
        raise unsupported_media_type((*RAW_MEDIA, FORM_MEDIA))
    body = await read_capped(request.stream(), request.headers.get("content-length"), limit)
    if media != FORM_MEDIA:
        return body
    try:
        parts = await form_parts(content_type or "", body, limit)
    except ApiError as exc:
        if exc.code != "too_many_reference_images":
            raise  # invalid_multipart
        parts = []  # more files than a verification takes
    if len(parts) != 1 or parts[0][0] != "image" or not isinstance(parts[0][1], bytes):
        raise invalid_image("Send one file part, named 'image', and nothing else.")
    return parts[0][1]


def presented(found: Verification, caller: Principal | None) -> ProvenanceVerification:
    entry = found.entry
    owned = entry is not None and (caller is None or caller.owns(entry.owner))
    credentials = found.credentials
    return ProvenanceVerification(
        generated_here=found.generated_here,
        generated_on=None
        if entry is None
        else datetime.fromtimestamp(entry.created, UTC).strftime("%Y-%m-%d"),
        matched_by=list(found.matched_by),  # type: ignore[arg-type]
        generation=VerifiedGeneration(id=entry.generation, created=entry.created, model=entry.model)
        if owned and entry is not None
        else None,
        content_credentials=None
        if credentials is None or not credentials.present
        else CredentialsFound(
            signed_here=credentials.signed_by_us,
            signature_valid=credentials.signature_valid,
            binding_valid=credentials.binding_valid,
        ),
        fingerprint=None
        if found.distance is None
        else FingerprintMatch(distance=found.distance, threshold=THRESHOLD),
    )


@router.post(
    VERIFY,
    response_model=ProvenanceVerification,
    responses=ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Did this deployment generate this image? (hash, signed manifest, fingerprint)",
)
async def verify(request: Request) -> JSONResponse:
    """Recognises an image this deployment generated by its exact bytes, by a C2PA
    manifest signed here, or by its perceptual fingerprint, which survives re-encoding
    (JPEG at quality 70), resizing to half, stripped metadata and a 5 % crop. A key's
    verification counts against its rate limit (``RateLimit-*``; ``429 rate_limited``), as
    a generation does: each costs an image rendering (on Workers, a billed Images
    transformation). Refusals: ``400 invalid_image``, ``413``, ``415``, ``429``,
    ``501 provenance_unavailable``."""
    gw = await gateway(request)
    caller = await who_asks(request, gw)
    if gw.provenance is None:
        raise unavailable()
    pace = {} if caller is None else await gw.controls.count_request(caller)
    data = await image_of(request, gw.settings.max_body_bytes)
    fmt = image_format(data[:16])
    found = await gw.provenance.verify(InProcessImage(data), fmt)
    # An answer about one caller's image, for that caller: never kept by a cache.
    headers = {**pace, "Cache-Control": "no-store"}
    return JSONResponse(presented(found, caller).model_dump(), headers=headers)
