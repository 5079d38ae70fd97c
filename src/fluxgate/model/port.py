"""The image model port and the FLUX.2 contract shared by every backend.

The gateway talks to one :class:`ImageModel`, which runs any model of the family
(:mod:`fluxgate.model.family`) the request names. Whatever carries the call (the AI binding on
Workers, the REST API or a local double under CPython), the request is the same multipart
form and the answer the same ``{"image": base64}``; the field list and the decoding live
here once.
"""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..imaging import b64
from ..imaging.formats import ImageFormatError, ImageInfo, inspect_image
from ..imaging.image_bytes import HEAD_BYTES, ImageBytes, InProcessImage
from .family import DEFAULT_MODEL, ModelSpec, placeholder_name
from .multipart import FilePart, encode_form
from .params import GenerationParams, ReferenceImage
from .upstream import UpstreamError, parse_upstream_message

log = logging.getLogger("fluxgate.model")


@dataclass(frozen=True)
class ModelInput:
    prompt: str
    width: int
    height: int
    steps: int
    seed: int
    guidance: float | None = None
    references: tuple[ReferenceImage, ...] = field(default_factory=tuple)
    model: ModelSpec = DEFAULT_MODEL

    @classmethod
    def for_params(cls, params: GenerationParams, prompt: str, seed: int) -> ModelInput:
        """The call for ``params``, with the prompt as the policy normalised it and the
        seed drawn for this call."""
        return cls(
            model=params.spec,
            prompt=prompt,
            width=params.width,
            height=params.height,
            steps=params.steps,
            seed=seed,
            guidance=params.guidance,
            references=params.references,
        )

    def text_fields(self) -> list[tuple[str, str]]:
        """The form's string fields, in the model's names and formats. ``steps`` is sent
        only to a model whose schedule is settable: klein refuses it."""
        out = [
            ("prompt", self.prompt),
            ("width", str(self.width)),
            ("height", str(self.height)),
        ]
        if self.model.settable_steps:
            out.append(("steps", str(self.steps)))
        out.append(("seed", str(self.seed)))
        if self.guidance is not None:
            out.append(("guidance", repr(float(self.guidance))))
        return out

    def file_fields(self) -> list[tuple[str, ReferenceImage]]:
        return [(f"input_image_{i}", ref) for i, ref in enumerate(self.references)]


@dataclass(frozen=True)
class GeneratedImage:
    data: ImageBytes
    info: ImageInfo
    upstream_ms: float | None = None  # the model call alone (reported as Server-Timing)


class ImageModel(Protocol):
    """Anything that turns a :class:`ModelInput` into image bytes, for any model of the
    family (``request.model``)."""

    def served_name(self, spec: ModelSpec) -> str:
        """What records, cache keys and responses name when this backend runs ``spec``:
        its Workers AI id, or ``placeholder/<short>`` for the offline generator (whose
        pictures must never pass for the real model's)."""
        ...

    async def generate(self, request: ModelInput) -> GeneratedImage: ...

    async def ready(self) -> None:
        """Raise when the models cannot be reached (``/readyz``): a free catalog lookup,
        never a generation."""
        ...


class ModelNotListed(Exception):
    """The model catalog answered, without a model this gateway calls."""


def check_listed(listed: list[str]) -> None:
    """Raise :class:`ModelNotListed` unless the default model is in ``listed`` (the answer
    to a search for its id). Readiness is the default model's: a gateway whose klein
    models were withdrawn still serves every request that names none."""
    if DEFAULT_MODEL.id not in listed:
        raise ModelNotListed(DEFAULT_MODEL.id)


class AIRunner(Protocol):
    """The shape of the AI binding: ``run(model, {"multipart": {"body", "contentType"}})``
    and ``models({"search": …})``."""

    async def run(self, model: str, inputs: Mapping[str, Any]) -> Any: ...

    async def models(self, search: str) -> list[str]:
        """The names of the catalog's models that match ``search``."""
        ...


def decode_model_output(result: Any) -> GeneratedImage:
    """Decode ``{"image": base64}`` and type the bytes; anything else is an upstream fault."""
    encoded = result.get("image") if isinstance(result, Mapping) else None
    if not isinstance(encoded, str) or not encoded:
        raise UpstreamError(None, "the model returned no image")
    try:
        data = b64.decode(encoded)
    except (binascii.Error, ValueError) as exc:
        raise UpstreamError(None, "the model returned invalid base64") from exc
    return typed_image(InProcessImage(data))


def typed_image(image: ImageBytes) -> GeneratedImage:
    """The model's image with its format and dimensions, read from its first bytes."""
    if not image.size:
        raise UpstreamError(None, "the model returned no image")
    try:
        try:
            info = inspect_image(image.head())
        except ImageFormatError:
            if image.size <= HEAD_BYTES:
                raise
            # A JPEG whose start-of-frame lies past its first 65 KiB (large EXIF/ICC/XMP
            # segments): rare enough to read the whole image for.
            info = inspect_image(image.python_bytes())
    except ImageFormatError as exc:
        raise UpstreamError(None, f"the model returned an unreadable image ({exc})") from exc
    return GeneratedImage(image, info)


class MultipartImageModel:
    """Calls anything shaped like the AI binding with a multipart body built in Python.

    ``stand_in``: the runner is the offline placeholder, and records name it so."""

    def __init__(self, runner: AIRunner, *, stand_in: bool = False) -> None:
        self._runner = runner
        self._stand_in = stand_in

    def served_name(self, spec: ModelSpec) -> str:
        return placeholder_name(spec) if self._stand_in else spec.id

    async def generate(self, request: ModelInput) -> GeneratedImage:
        fields: list[tuple[str, str | FilePart]] = list(request.text_fields())
        for name, ref in request.file_fields():
            fields.append((name, FilePart(ref.data, ref.info.mime, f"{name}.{ref.info.extension}")))
        body, content_type = encode_form(fields)
        started = time.perf_counter()
        try:
            result = await self._runner.run(
                request.model.id, {"multipart": {"body": body, "contentType": content_type}}
            )
        except UpstreamError:
            raise
        except Exception as exc:  # the binding's InferenceUpstreamError, a network error...
            log.warning("model call failed: %s", type(exc).__name__)
            raise parse_upstream_message(str(exc)) from exc
        upstream_ms = (time.perf_counter() - started) * 1000
        return replace(decode_model_output(result), upstream_ms=upstream_ms)

    async def ready(self) -> None:
        check_listed(await self._runner.models(DEFAULT_MODEL.id))
