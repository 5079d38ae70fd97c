"""Reading ``POST /v1/images/generations`` bodies: JSON or multipart, size-capped.

Both encodings end in the same :class:`GenerationRequest` plus a list of reference image
bytes, so every rule after this point is written once. The body is counted while it streams
in, so an oversize upload is refused without being buffered whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from .errors import ApiError
from .model import MAX_REFERENCE_IMAGES, ReferenceImage
from .models import GenerationRequest
from .references import check_references, decode_image_string, reference_index, too_many

_OPENAI_IMAGE = re.compile(r"^image(\[\d*\])?$")


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes.")


def declared_length(header: str | None) -> int | None:
    """A ``Content-Length`` value as a number, or ``None`` when absent or not plain ASCII
    digits (the server in front rejects those; nothing here may raise on them)."""
    if header is None:
        return None
    value = header.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    return int(value)


async def read_capped(request: Request, limit: int) -> bytes:
    declared = declared_length(request.headers.get("content-length"))
    if declared is not None and declared > limit:
        raise payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def validation_error(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """One client error from pydantic's list; ``param`` names the first offending field."""
    errors = [{**e, "loc": tuple(p for p in e["loc"] if p != "body")} for e in errors]
    first = errors[0]
    param = ".".join(str(p) for p in first["loc"]) or None
    if first["type"] in ("json_invalid", "model_attributes_type", "dict_type"):
        return ApiError(400, "invalid_json", "The body must be a valid JSON object.")
    if first["type"] == "extra_forbidden" and param:
        if reference_index(param) is not None:
            return too_many()
        return ApiError(400, "unknown_parameter", f"Unknown parameter '{param}'.", param=param)
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:5]
    )
    return ApiError(400, "invalid_request", f"Invalid request: {detail}.", param=param)


def _validate(data: dict[str, Any], *, strict: bool) -> GenerationRequest:
    try:
        return GenerationRequest.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def parse_generation(
    request: Request, *, max_body: int, max_image: int, edit: bool = False
) -> tuple[GenerationRequest, tuple[ReferenceImage, ...]]:
    """Parse a generation (``edit=False``) or an OpenAI-style edit (multipart with ``image``
    parts, at least one)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = ("multipart/form-data",) if edit else ("application/json", "multipart/form-data")
    if content_type not in allowed:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send {' or '.join(allowed)}.",
            headers={"Accept-Post": ", ".join(allowed)},
        )
    body = await read_capped(request, max_body)
    images: list[tuple[str, bytes]] = []

    if content_type == "application/json":
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "The body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "invalid_json", "The body must be a JSON object.")
        parsed = _validate(data, strict=True)  # JSON has real types: "25" is not a number
        for index in range(MAX_REFERENCE_IMAGES):
            name = f"input_image_{index}"
            value = getattr(parsed, name)
            if value is not None:
                images.append((name, decode_image_string(name, value, max_image)))
        return parsed, check_references(images, max_image)

    parser = MultiPartParser(
        request.headers,
        _once(body),
        max_files=MAX_REFERENCE_IMAGES + 1,
        max_fields=32,
        max_part_size=max_body,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "files" in str(exc).lower():
            raise too_many() from None
        raise ApiError(400, "invalid_multipart", f"Malformed multipart body: {exc}") from None
    fields: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if edit and _OPENAI_IMAGE.match(name):
                # OpenAI's edits send image / image[] parts: they become input_image_N in order.
                name = f"input_image_{len(images)}"
            elif edit and name == "mask":
                raise ApiError(
                    400,
                    "unsupported_parameter",
                    "Masks are not supported by flux-2-dev.",
                    param="mask",
                )
            if name in fields or any(name == n for n, _ in images):
                raise ApiError(400, "invalid_request", f"Field '{name}' is repeated.", param=name)
            index = reference_index(name)
            if index is not None and index >= MAX_REFERENCE_IMAGES:
                raise too_many()
            if isinstance(value, UploadFile):
                if index is None:
                    raise ApiError(
                        400, "invalid_request", f"Field '{name}' must not be a file.", param=name
                    )
                images.append((name, await value.read()))
            elif index is not None:
                images.append((name, decode_image_string(name, value, max_image)))
            else:
                fields[name] = value
    finally:
        await form.close()
    if edit and not images:
        raise ApiError(400, "invalid_request", "An edit needs at least one image.", param="image")
    return _validate(fields, strict=False), check_references(images, max_image)
