"""The image model port and the flux-2-dev contract shared by every backend.

The gateway talks to one :class:`ImageModel`. Whatever carries the call (the AI binding on
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

from . import b64
from .image_bytes import HEAD_BYTES, ImageBytes, InProcessImage
from .images import ImageFormatError, ImageInfo, inspect_image
from .multipart import FilePart, encode_form
from .params import GenerationParams, ReferenceImage
from .upstream import UpstreamError, parse_upstream_message

log = logging.getLogger("fluxgate.model")

# flux-2-dev's documented input ranges.
MIN_SIZE, MAX_SIZE = 256, 1920
MAX_REFERENCE_IMAGES = 4


@dataclass(frozen=True)
class ModelInput:
    prompt: str
    width: int
    height: int
    steps: int
    seed: int
    guidance: float | None = None
    references: tuple[ReferenceImage, ...] = field(default_factory=tuple)

    @classmethod
    def for_params(cls, params: GenerationParams, prompt: str, seed: int) -> ModelInput:
        """The call for ``params``, with the prompt as the policy normalised it and the
        seed drawn for this call."""
        return cls(
            prompt=prompt,
            width=params.width,
            height=params.height,
            steps=params.steps,
            seed=seed,
            guidance=params.guidance,
            references=params.references,
        )

    def text_fields(self) -> list[tuple[str, str]]:
        """The form's string fields, in the model's names and formats."""
        out = [
            ("prompt", self.prompt),
            ("width", str(self.width)),
            ("height", str(self.height)),
            ("steps", str(self.steps)),
            ("seed", str(self.seed)),
        ]
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
    """Anything that turns a :class:`ModelInput` into image bytes.

    ``name`` is what responses report as ``model``; it is ``placeholder`` for the offline
    generator, never the real model id.
    """

    name: str

    async def generate(self, request: ModelInput) -> GeneratedImage: ...

    async def ready(self) -> None:
        """Raise when the model cannot be reached (``/readyz``): a free catalog lookup,
        never a generation."""
        ...


class ModelNotListed(Exception):
    """The model catalog answered, without the model this gateway calls."""


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
    """Calls anything shaped like the AI binding with a multipart body built in Python."""

    def __init__(self, runner: AIRunner, *, model_id: str, name: str | None = None) -> None:
        self._runner = runner
        self.model_id = model_id
        self.name = name or model_id

    async def generate(self, request: ModelInput) -> GeneratedImage:
        fields: list[tuple[str, str | FilePart]] = list(request.text_fields())
        for name, ref in request.file_fields():
            fields.append((name, FilePart(ref.data, ref.info.mime, f"{name}.{ref.info.extension}")))
        body, content_type = encode_form(fields)
        started = time.perf_counter()
        try:
            result = await self._runner.run(
                self.model_id, {"multipart": {"body": body, "contentType": content_type}}
            )
        except UpstreamError:
            raise
        except Exception as exc:  # the binding's InferenceUpstreamError, a network error...
            log.warning("model call failed: %s", type(exc).__name__)
            raise parse_upstream_message(str(exc)) from exc
        upstream_ms = (time.perf_counter() - started) * 1000
        return replace(decode_model_output(result), upstream_ms=upstream_ms)

    async def ready(self) -> None:
        if self.model_id not in await self._runner.models(self.model_id):
            raise ModelNotListed(self.model_id)
