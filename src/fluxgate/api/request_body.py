"""Reading ``POST /v1/images/generations`` bodies: JSON or multipart, size-capped.

Both encodings end in the same :class:`GenerationRequest` plus a list of reference image
bytes, and :func:`generation_params` resolves the two into the core's one
:class:`~fluxgate.model.params.GenerationParams`, so every rule after this point is written
once. The body is counted while it streams in, so an oversize upload is refused without
being buffered whole.

Framework-free, like the generation handler that reads bodies through it: a runtime hands
over the body as chunks (:func:`read_capped`) and, for multipart, the parts its own form
parser found (:data:`FormParser`); what the parts mean is decided here.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from python_multipart.multipart import parse_options_header

from ..delivery.signing import is_decimal
from ..errors import ApiError
from ..model.family import (
    DEFAULT_HEIGHT,
    DEFAULT_MODEL,
    DEFAULT_WIDTH,
    MAX_REFERENCE_IMAGES,
    MODELS,
    ModelSpec,
)
from ..model.params import GenerationParams, ReferenceImage
from ..model.references import check_references, decode_image_string, reference_index, too_many
from .json_text import invalid_json, parse_json
from .schemas import GenerationRequest

_OPENAI_IMAGE = re.compile(r"^image(\[[0-9]*\])?$")
# The generation's field names (and aliases): a file part under any other name is an
# unknown parameter, as the same name is in JSON.
_FORM_FIELDS = frozenset(GenerationRequest.model_fields) | {
    f.alias for f in GenerationRequest.model_fields.values() if f.alias
}


# A multipart body's parts, in order, as a runtime's form parser found them: a text field's
# value as ``str``, a file part's content as ``bytes``. Called with the ``Content-Type``
# header, the body and the largest part allowed; a malformed body is ``400
# invalid_multipart`` (``too_many`` past the reference images' count).
FormParser = Callable[[str, bytes, int], Awaitable[list[tuple[str, str | bytes]]]]
# The whole body, read on demand: ``413 payload_too_large`` past the limit given.
BodyReader = Callable[[int], Awaitable[bytes]]


def body_incomplete() -> ApiError:
    """The client went away before its body was whole (both runtimes' body readers). A new
    error each time: one raised again and again would keep every raise's frames (and the
    body read so far) in its traceback."""
    return ApiError(
        400, "body_incomplete", "The request body ended before it was complete; send it again."
    )


def payload_too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The request body exceeds {limit} bytes.")


def declared_length(header: str | None) -> int | None:
    """A ``Content-Length`` value as a number, or ``None`` when absent or not plain ASCII
    digits (the server in front rejects those; nothing here may raise on them)."""
    if header is None:
        return None
    value = header.strip()
    if len(value) > 19 or not is_decimal(value):
        return None
    return int(value)


async def read_capped(
    stream: AsyncIterable[bytes], content_length: str | None, limit: int
) -> bytes:
    """The body whose ``Content-Length`` header is ``content_length``, from its chunks:
    refused from the header alone when it declares more than ``limit`` bytes, and as soon
    as the chunks pass ``limit`` when it declares nothing."""
    declared = declared_length(content_length)
    if declared is not None and declared > limit:
        raise payload_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise payload_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# Where FastAPI found the value: the first element of its ``loc``, not part of the name.
_SOURCES = ("body", "query", "path", "header", "cookie")


def param_name(error: Mapping[str, Any]) -> str | None:
    """The field an error is about, as the API spells it: ``overrides.daily_budget_usd``,
    ``scopes[0]``. An error raised for the whole model names its field in
    ``ctx["param"]`` (see :class:`GenerationRequest`)."""
    loc = list(error.get("loc") or ())
    if loc and loc[0] in _SOURCES:
        loc = loc[1:]
    name = ""
    for part in loc:
        name += f"[{part}]" if isinstance(part, int) else f".{part}" if name else str(part)
    context = error.get("ctx") or {}
    return name or (str(context["param"]) if "param" in context else None)


def _quantity(count: object, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# pydantic's error types, in the API's words: "{param} " + the phrase. Types not listed
# (custom errors raised by the models) already carry the API's words in ``msg``.
_PHRASES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "missing": lambda c: "is required",
    "string_type": lambda c: "must be a string",
    "string_too_short": lambda c: (
        "must not be empty"
        if c.get("min_length") == 1
        else f"must be at least {_quantity(c.get('min_length'), 'character')}"
    ),
    "string_too_long": lambda c: f"must be at most {_quantity(c.get('max_length'), 'character')}",
    "string_pattern_mismatch": lambda c: f"must match {c.get('pattern')}",
    "int_type": lambda c: "must be an integer",
    "int_parsing": lambda c: "must be an integer",
    "int_from_float": lambda c: "must be an integer",
    "int_parsing_size": lambda c: "is too large",
    "float_type": lambda c: "must be a number",
    "float_parsing": lambda c: "must be a number",
    "finite_number": lambda c: "must be a finite number",
    "bool_type": lambda c: "must be true or false",
    "bool_parsing": lambda c: "must be true or false",
    "greater_than_equal": lambda c: f"must be at least {c.get('ge')}",
    "greater_than": lambda c: f"must be greater than {c.get('gt')}",
    "less_than_equal": lambda c: f"must be at most {c.get('le')}",
    "less_than": lambda c: f"must be less than {c.get('lt')}",
    "literal_error": lambda c: f"must be {c.get('expected')}",
    "enum": lambda c: f"must be {c.get('expected')}",
    "list_type": lambda c: "must be a list",
    "too_short": lambda c: f"must have at least {_quantity(c.get('min_length'), 'item')}",
    "too_long": lambda c: f"must have at most {_quantity(c.get('max_length'), 'item')}",
    "dict_type": lambda c: "must be an object",
    "model_type": lambda c: "must be an object",
    "model_attributes_type": lambda c: "must be an object",
    "none_required": lambda c: "must be null",
}


def describe(error: Mapping[str, Any]) -> str:
    """One validation error as a sentence that names its field."""
    param = param_name(error)
    phrase = _PHRASES.get(str(error.get("type")))
    if phrase is None:  # a model's own error: its message is already the API's
        text = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
        return text if param is None or text.startswith(param) else f"{param}: {text}"
    return f"{param or 'the body'} {phrase(error.get('ctx') or {})}"


def unknown_parameter(name: str) -> ApiError:
    return ApiError(400, "unknown_parameter", f"Unknown parameter '{name}'.", param=name)


def validation_error(errors: Sequence[Mapping[str, Any]]) -> ApiError:
    """One client error from pydantic's list: ``param`` names the first offending field,
    the message describes up to five, each in the API's words."""
    first = errors[0]
    param = param_name(first)
    if first["type"] == "json_invalid" or (
        param is None and first["type"] in ("model_attributes_type", "dict_type", "model_type")
    ):
        return invalid_json("the body must be a JSON object")
    if first["type"] == "extra_forbidden" and param:
        if reference_index(param) is not None:
            return too_many()
        return unknown_parameter(param)
    detail = "; ".join(describe(e) for e in errors[:5])
    return ApiError(400, "invalid_request", f"Invalid request: {detail}.", param=param)


def _validate(data: dict[str, Any], *, strict: bool) -> GenerationRequest:
    try:
        return GenerationRequest.model_validate(data, strict=strict)
    except ValidationError as exc:
        raise validation_error(exc.errors()) from None


def is_complete_multipart(content_type: str, body: bytes) -> bool:
    """Whether ``body`` reaches the close delimiter of its boundary (RFC 2046).

    The multipart parser accepts a body cut short and returns the parts before the cut,
    so a truncated upload would be judged on what happened to arrive ("prompt is
    required"). The close delimiter cannot occur inside a part, so its presence means every
    part is whole. Without a usable boundary the parser itself refuses the body.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        return True
    close = b"--" + boundary + b"--"
    return body.startswith(close) or b"\r\n" + close in body


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def parse_json_generation(
    body: bytes, max_image: int
) -> tuple[GenerationRequest, tuple[ReferenceImage, ...]]:
    """A JSON generation body, validated."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise invalid_json("the body must be a JSON object")
    parsed = _validate(data, strict=True)  # JSON has real types: "25" is not a number
    images: list[tuple[str, bytes]] = []
    for slot in range(MAX_REFERENCE_IMAGES):
        name = f"input_image_{slot}"
        value = getattr(parsed, name)
        if value is not None:
            images.append((name, decode_image_string(name, value, max_image)))
    return parsed, check_references(images, max_image)


def unsupported_media_type(allowed: tuple[str, ...]) -> ApiError:
    return ApiError(
        415,
        "unsupported_media_type",
        f"Send {' or '.join(allowed)}.",
        headers={"Accept-Post": ", ".join(allowed)},
    )


def accepted_media(content_type: str | None, *, edit: bool = False) -> str:
    """The media type of a generation (``edit=False``) or an OpenAI-style edit (multipart
    only), from its ``Content-Type`` header; ``415`` for any other, before the body is
    read."""
    media = media_type(content_type)
    allowed = ("multipart/form-data",) if edit else ("application/json", "multipart/form-data")
    if media not in allowed:
        raise unsupported_media_type(allowed)
    return media


async def parse_generation(
    content_type: str | None,
    body: bytes,
    forms: FormParser,
    *,
    max_body: int,
    max_image: int,
    edit: bool = False,
) -> tuple[GenerationRequest, tuple[ReferenceImage, ...]]:
    """Parse a generation's ``body`` (JSON or multipart) or an OpenAI-style edit's
    (multipart with ``image`` parts, at least one), whose ``Content-Type`` header is
    ``content_type`` (:func:`accepted_media`)."""
    if accepted_media(content_type, edit=edit) == "application/json":
        return parse_json_generation(body, max_image)
    if not is_complete_multipart(content_type or "", body):
        raise ApiError(
            400,
            "invalid_multipart",
            "Malformed multipart body: it ends before its closing boundary (truncated?).",
        )
    return form_generation(await forms(content_type or "", body, max_body), max_image, edit)


def form_generation(
    parts: Sequence[tuple[str, str | bytes]], max_image: int, edit: bool
) -> tuple[GenerationRequest, tuple[ReferenceImage, ...]]:
    """A multipart generation from its parts (text values are parsed as their JSON types)."""
    images: list[tuple[str, bytes]] = []
    fields: dict[str, Any] = {}
    for name, value in parts:
        if edit and _OPENAI_IMAGE.match(name):
            # OpenAI's edits send image / image[] parts: they become input_image_N in order.
            name = f"input_image_{len(images)}"
        elif edit and name == "mask":
            raise ApiError(
                400,
                "unsupported_parameter",
                "Masks are not supported by the FLUX.2 models.",
                param="mask",
            )
        if name in fields or any(name == n for n, _ in images):
            raise ApiError(400, "invalid_request", f"Field '{name}' is repeated.", param=name)
        index = reference_index(name)
        if index is not None and index >= MAX_REFERENCE_IMAGES:
            raise too_many()
        if isinstance(value, bytes):
            if index is None and name not in _FORM_FIELDS:
                raise unknown_parameter(name)
            if index is None:
                raise ApiError(
                    400, "invalid_request", f"Field '{name}' must not be a file.", param=name
                )
            images.append((name, value))
        elif index is not None:
            images.append((name, decode_image_string(name, value, max_image)))
        else:
            fields[name] = value
    if edit and not images:
        raise ApiError(400, "invalid_request", "An edit needs at least one image.", param="image")
    return _validate(fields, strict=False), check_references(images, max_image)


def requested_model(
    request: GenerationRequest, find: Callable[[str], ModelSpec | None]
) -> ModelSpec:
    """The model a request names (flux-2-dev when it names none), looked up with ``find``
    (:meth:`Gateway.find_model`), or ``400 model_not_found``."""
    if request.model is None:
        return DEFAULT_MODEL
    spec = find(request.model)
    if spec is None:
        served = ", ".join(model.short for model in MODELS)
        raise ApiError(
            400,
            "model_not_found",
            f"The model '{request.model}' is not served here; use one of: {served}.",
            param="model",
        )
    return spec


def check_steps(request: GenerationRequest, spec: ModelSpec) -> None:
    """``400 unsupported_parameter`` for ``steps`` sent to a fixed-schedule model: refused,
    not ignored, since a client that sends it believes it controls something."""
    if request.steps is not None and not spec.settable_steps:
        raise ApiError(
            400,
            "unsupported_parameter",
            f"{spec.short} runs a fixed {spec.default_steps}-step schedule: 'steps' cannot be "
            "set for it (omit it, or use flux-2-dev).",
            param="steps",
        )


def generation_params(
    request: GenerationRequest,
    references: tuple[ReferenceImage, ...],
    spec: ModelSpec,
    served_name: str,
) -> GenerationParams:
    """The request's parameters, resolved: ``size`` is already width and height (the
    schema's validator), the model's defaults are applied, ``served_name`` is what the
    model runs as here (:meth:`ImageModel.served_name`)."""
    check_steps(request, spec)
    return GenerationParams(
        prompt=request.prompt,
        width=request.width or DEFAULT_WIDTH,
        height=request.height or DEFAULT_HEIGHT,
        steps=request.steps or spec.default_steps,
        guidance=request.guidance,
        seed=request.seed,
        model=served_name,
        references=references,
    )
