"""An offline stand-in for the AI binding, held to each model's contract.

``PlaceholderAI.run`` accepts exactly what ``env.AI.run`` accepts for the FLUX.2 models the
gateway serves (:data:`fluxgate.model.family.MODELS`: flux-2-dev, flux-2-klein-4b and
flux-2-klein-9b): a ``{"multipart": {"body", "contentType"}}`` whose content type carries
the boundary, the model's form fields and nothing else, sizes in range, at most four
PNG/JPEG/WebP reference images under 512x512. ``steps`` (1-50) is a field of flux-2-dev
only: the klein models have a fixed 4-step schedule and refuse it. It answers
``{"image": base64}`` with a real PNG drawn deterministically from the model and the
parameters (the same fields give another picture for another model), and fails the way
Workers AI fails: ``InferenceUpstreamError("<code>: <message>")``, ``5006`` for a contract
violation, ``5007: No such model <id>`` for a model it does not serve. ``models(search)``
lists the served models whose id contains ``search``. Responses made with it name the
model ``placeholder`` (or ``placeholder/<short name>``), never a real model's name.

:class:`PlaceholderVisionAI` stands in for the output classifier (Llama 4 Scout): it holds
a classification request to the model's input contract and calls every image safe. It is
no safety classifier; verdicts it gave name ``placeholder/image-classifier``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from ..imaging import b64
from ..imaging.formats import ImageFormatError, inspect_image
from ..model.family import MAX_REFERENCE_SIDE, MAX_SIZE, MAX_STEPS, MIN_SIZE, MODELS, ModelSpec
from ..policy.prompt_moderation import Verdict

PLACEHOLDER_NAME = "placeholder"
TEXT_FIELDS = {"prompt", "width", "height", "steps", "guidance", "seed"}
IMAGE_FIELDS = {f"input_image_{i}" for i in range(4)}
# What ``env.AI.run`` takes: the exact Workers AI ids (no short names or aliases).
SERVED: dict[str, ModelSpec] = {spec.id: spec for spec in MODELS}


class InferenceUpstreamError(Exception):
    """What the AI binding raises; the message starts with Workers AI's numeric code."""


def _invalid(message: str) -> InferenceUpstreamError:
    return InferenceUpstreamError(f"5006: {message}")


def parse_multipart(body: bytes, content_type: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """Parse a form the way the platform does; no boundary means no form at all."""
    if "boundary=" not in content_type.lower():
        raise _invalid("could not parse multipart input: no boundary in content type")
    if not content_type.lower().startswith("multipart/form-data"):
        raise _invalid(f"expected multipart/form-data, got {content_type.split(';')[0]}")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise _invalid("could not parse multipart input")
    texts: dict[str, str] = {}
    files: dict[str, bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise _invalid("multipart part without a name")
        payload = part.get_payload(decode=True) or b""
        if not isinstance(payload, bytes):  # decode=True gives bytes for a non-multipart part
            raise _invalid("nested multipart input")
        if part.get_filename() is not None:
            files[name] = payload
        else:
            texts[name] = payload.decode()
    return texts, files


def _int(fields: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = fields.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _invalid(f"Type mismatch of '/{name}', 'string' not in 'integer'") from None
    if not lo <= value <= hi:
        raise _invalid(f"'/{name}' must be between {lo} and {hi}")
    return value


def render_png(width: int, height: int, fingerprint: bytes) -> bytes:
    """A PNG drawn from ``fingerprint`` (the request's hash): a few rectangles, discs and
    slanted stripes over a horizontal gradient, their places, sizes and colours all taken
    from it. Distinct parameters give structurally distinct pictures, so that their
    perceptual fingerprints (:mod:`fluxgate.provenance.fingerprint`) are unrelated; the same
    parameters give the same bytes. Rows are painted as spans of flat colour (slice
    assignments, no per-pixel Python): a 1024x768 picture takes about 15 ms."""
    rng = random.Random(fingerprint)
    start, end = _colour(rng), _colour(rng)
    background = bytearray()
    for x in range(width):
        t = x / max(1, width - 1)
        background += bytes(int(a + (b - a) * t) for a, b in zip(start, end, strict=True))
    shapes = [_shape(rng, width, height) for _ in range(rng.randint(4, 7))]
    rows = []
    for y in range(height):
        row = bytearray(background)
        for shape in shapes:
            for a, b in shape.spans(y):
                row[3 * a : 3 * b] = shape.colour * (b - a)
        rows.append(b"\x00" + row)  # filter: none

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
        + chunk(b"IEND", b"")
    )


def _colour(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(3))


@dataclass(frozen=True)
class _Rectangle:
    left: int
    right: int
    top: int
    bottom: int
    colour: bytes

    def spans(self, y: int) -> list[tuple[int, int]]:
        return [(self.left, self.right)] if self.top <= y < self.bottom else []


@dataclass(frozen=True)
class _Disc:
    cx: float
    cy: float
    radius: float
    width: int
    colour: bytes

    def spans(self, y: int) -> list[tuple[int, int]]:
        dy = y + 0.5 - self.cy
        if abs(dy) >= self.radius:
            return []
        half = math.sqrt(self.radius * self.radius - dy * dy)
        a, b = max(0, round(self.cx - half)), min(self.width, round(self.cx + half))
        return [(a, b)] if a < b else []


@dataclass(frozen=True)
class _Stripes:
    """Slanted stripes filling a rectangle: ``period`` pixels apart, half of it painted,
    shifting by ``slope`` pixels a row."""

    box: _Rectangle
    period: int
    slope: float

    @property
    def colour(self) -> bytes:
        return self.box.colour

    def spans(self, y: int) -> list[tuple[int, int]]:
        if not self.box.top <= y < self.box.bottom:
            return []
        left, right = self.box.left, self.box.right
        found = []
        shift = round(y * self.slope) % self.period
        for a in range(left - self.period + shift, right, self.period):
            lo, hi = max(a, left), min(a + self.period // 2, right)
            if lo < hi:
                found.append((lo, hi))
        return found


def _shape(rng: random.Random, width: int, height: int) -> _Rectangle | _Disc | _Stripes:
    colour = _colour(rng)
    kind = rng.randrange(3)
    if kind == 1:
        radius = rng.uniform(0.08, 0.3) * min(width, height)
        return _Disc(rng.uniform(0, width), rng.uniform(0, height), radius, width, colour)
    left, top = rng.randrange(width), rng.randrange(height)
    box = _Rectangle(
        left,
        min(width, left + max(1, int(rng.uniform(0.15, 0.6) * width))),
        top,
        min(height, top + max(1, int(rng.uniform(0.15, 0.6) * height))),
        colour,
    )
    if kind == 0:
        return box
    return _Stripes(box, max(4, int(rng.uniform(0.04, 0.15) * width)), rng.uniform(-2, 2))


def _refuse_fixed_steps(spec: ModelSpec, texts: Mapping[str, str]) -> None:
    """A ``steps`` field sent to a model with a fixed schedule (the klein models)."""
    if not spec.settable_steps and "steps" in texts:
        raise _invalid(
            f"'/steps' cannot be set for {spec.id}: "
            f"the steps parameter is fixed at {spec.default_steps} for this model"
        )


class PlaceholderAI:
    """Behaves like ``env.AI`` for the FLUX.2 family, without a network or a GPU."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls = 0

    async def models(self, search: str) -> list[str]:
        """The catalog as the binding lists it: the served models whose name contains
        ``search`` (case-insensitive, as the binding's search matches names)."""
        needle = search.casefold()
        return [spec.id for spec in MODELS if needle in spec.id.casefold()]

    async def run(self, model: str, inputs: Any) -> dict[str, str]:
        spec = SERVED.get(model)
        if spec is None:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        multipart = inputs.get("multipart") if isinstance(inputs, Mapping) else None
        if not isinstance(multipart, Mapping):
            raise _invalid("this model takes {'multipart': {'body', 'contentType'}}")
        body, content_type = multipart.get("body"), multipart.get("contentType")
        if not isinstance(body, bytes | bytearray) or not isinstance(content_type, str):
            raise _invalid("multipart.body must be a body stream and contentType a string")
        texts, files = parse_multipart(bytes(body), content_type)
        unknown = (set(texts) - TEXT_FIELDS) | (set(files) - IMAGE_FIELDS)
        if unknown:
            raise _invalid(f"unknown field(s): {', '.join(sorted(unknown))}")
        _refuse_fixed_steps(spec, texts)
        if not texts.get("prompt"):
            raise _invalid("required properties at '/' are 'prompt'")
        width = _int(texts, "width", 1024, MIN_SIZE, MAX_SIZE)
        height = _int(texts, "height", 768, MIN_SIZE, MAX_SIZE)
        if spec.settable_steps:
            _int(texts, "steps", spec.default_steps, 1, MAX_STEPS)
        _int(texts, "seed", 0, 0, 2**63 - 1)
        if "guidance" in texts:
            try:
                float(texts["guidance"])
            except ValueError:
                raise _invalid("'/guidance' must be a number") from None
        for name, data in files.items():
            try:
                info = inspect_image(data)
            except ImageFormatError as exc:
                raise _invalid(f"{name}: {exc}") from None
            if info.width > MAX_REFERENCE_SIDE or info.height > MAX_REFERENCE_SIDE:
                raise _invalid(f"{name} must be smaller than 512x512")
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        # The model is part of what is drawn: a klein draft and a dev render of the same
        # fields differ.
        fingerprint = hashlib.sha256(
            model.encode()
            + b"\0"
            + repr(sorted(texts.items())).encode()
            + b"".join(hashlib.sha256(files[k]).digest() for k in sorted(files))
        ).digest()
        png = await asyncio.to_thread(self.render, width, height, fingerprint)
        return {"image": b64.encode(png)}

    def render(self, width: int, height: int, fingerprint: bytes) -> bytes:
        """The image for validated inputs (a subclass may draw something else)."""
        return render_png(width, height, fingerprint)


class PlaceholderModerator:
    """Offline stand-in for Llama Guard: flags prompts that contain listed words.

    Only for running without a Cloudflare account; it names itself ``placeholder`` and is
    no safety classifier. With credentials the local runtime uses the real model.
    """

    name = PLACEHOLDER_NAME
    WORDS: dict[str, str] = {
        "murder": "S1",
        "bomb": "S9",
        "nerve agent": "S9",
        "suicide": "S11",
        "nude": "S12",
    }

    async def classify(self, prompt: str) -> Verdict:
        text = prompt.casefold()
        hits = sorted({cat for word, cat in self.WORDS.items() if word in text})
        return Verdict(not hits, tuple(hits))


# -- the output classifier ---------------------------------------------------------------

PLACEHOLDER_CLASSIFIER = "placeholder/image-classifier"
VISION_MIMES = ("image/png", "image/jpeg", "image/webp")


def vision_image(inputs: Any) -> tuple[str, bytes]:
    """The one image of a Llama 4 Scout chat input, held to the model's contract (see
    :mod:`fluxgate.policy.output_moderation`): a plain object with ``messages`` and a
    ``response_format``; a user message whose ``content`` array has a text part and exactly
    one ``image_url`` part, a base64 data URI (no HTTP URL) of a PNG, JPEG or WebP whose
    bytes really are that format. Returns its MIME type and bytes; raises ``5006``."""
    if not isinstance(inputs, Mapping):
        raise _invalid("inputs must be an object")
    messages = inputs.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _invalid("required properties at '/' are 'messages'")
    if "response_format" not in inputs:
        raise _invalid("the classifier is asked for JSON: 'response_format' is required")
    images: list[Any] = []
    texts = 0
    for message in messages:
        if not isinstance(message, Mapping) or not {"role", "content"} <= set(message):
            raise _invalid("required properties at '/messages' are 'role', 'content'")
        content = message["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or message["role"] != "user":
            raise _invalid("'/messages/content' must be a string or, for the user, an array")
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind == "text" and isinstance(part.get("text"), str):
                texts += 1
            elif kind == "image_url" and isinstance(part.get("image_url"), Mapping):
                images.append(part["image_url"].get("url"))
            else:
                raise _invalid(f"unknown content part {kind!r}")
    if texts < 1 or len(images) != 1:
        raise _invalid("the user message needs a text part and exactly one image_url part")
    return _data_uri(images[0])


def _data_uri(url: Any) -> tuple[str, bytes]:
    if not isinstance(url, str) or not url.startswith("data:"):
        raise _invalid("image_url.url must be a data URI: HTTP URL will not be accepted")
    header, _, payload = url.partition(",")
    mime = header.removeprefix("data:").removesuffix(";base64")
    if not header.endswith(";base64") or mime not in VISION_MIMES:
        raise _invalid(
            f"image_url.url must be base64 image/png, image/jpeg or image/webp: {header}"
        )
    try:
        data = b64.decode(payload)
        info = inspect_image(data)
    except (ValueError, ImageFormatError) as exc:
        raise _invalid(f"image_url.url is not a readable image: {exc}") from None
    if info.mime != mime:
        raise _invalid(f"image_url.url says {mime} but holds {info.mime}")
    return mime, data


class PlaceholderVisionAI:
    """Offline stand-in for Llama 4 Scout as the output classifier: it checks the input
    contract exactly, then answers ``{"response": {"safe": true, "categories": []}}`` for
    every image.

    It is **no safety classifier**: it looks at nothing but the format. Only for running
    without a Cloudflare account; records it checked name ``placeholder/image-classifier``
    (see :func:`fluxgate.local.runtime.local_models`), so a verdict it gave never passes for
    a real one. With credentials the local runtime calls the real model.
    """

    MODEL = "@cf/meta/llama-4-scout-17b-16e-instruct"

    def __init__(self) -> None:
        self.calls = 0

    async def run(self, model: str, inputs: Any) -> dict[str, Any]:
        if model != self.MODEL:
            raise InferenceUpstreamError(f"5007: No such model {model}")
        vision_image(inputs)
        self.calls += 1
        return {"response": {"safe": True, "categories": []}, "usage": {}}

    async def models(self, search: str) -> list[str]:
        return [self.MODEL] if search.casefold() in self.MODEL.casefold() else []
