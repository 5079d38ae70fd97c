"""An offline stand-in for the AI binding, held to the binding's contract.

``PlaceholderAI.run`` accepts exactly what ``env.AI.run`` accepts for flux-2-dev: a
``{"multipart": {"body", "contentType"}}`` whose content type carries the boundary, the
model's form fields and nothing else, sizes in range, at most four PNG/JPEG/WebP reference
images under 512x512. It answers ``{"image": base64}`` with a real PNG drawn
deterministically from the parameters, and fails the way Workers AI fails:
``InferenceUpstreamError("<code>: <message>")``. Responses made with it name the model
``placeholder``, never flux-2-dev.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import Mapping
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from .. import FLUX_MODEL_ID, b64
from ..images import ImageFormatError, inspect_image
from ..moderation import Verdict

PLACEHOLDER_NAME = "placeholder"
TEXT_FIELDS = {"prompt", "width", "height", "steps", "guidance", "seed"}
IMAGE_FIELDS = {f"input_image_{i}" for i in range(4)}


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
    """A PNG whose colours come from ``fingerprint``: diagonal bands over a gradient."""
    c1, c2, c3 = fingerprint[0:3], fingerprint[3:6], fingerprint[6:9]
    xs = bytearray()
    for x in range(width):
        t = x / max(1, width - 1)
        xs += bytes(int(a + (b - a) * t) for a, b in zip(c1, c2, strict=True))
    band = max(8, fingerprint[9] % 64 + 8)
    half = 3 * (width // 2)
    right = bytes((v ^ c3[i % 3]) & 0xFF for i, v in enumerate(xs[half:]))
    variants = [
        b"\x00" + bytes((v + shift) & 0xFF for v in xs[:half]) + right
        for shift in (0, fingerprint[10] % 97 + 1)
    ]
    rows = [variants[(y // band) % 2] for y in range(height)]
    raw = b"".join(rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


class PlaceholderAI:
    """Behaves like ``env.AI`` for flux-2-dev, without a network or a GPU."""

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.calls = 0

    async def models(self, search: str) -> list[str]:
        """The catalog as the binding lists it: the one model this double draws for."""
        return [FLUX_MODEL_ID] if search in FLUX_MODEL_ID else []

    async def run(self, model: str, inputs: Any) -> dict[str, str]:
        if model != FLUX_MODEL_ID:
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
        if not texts.get("prompt"):
            raise _invalid("required properties at '/' are 'prompt'")
        width = _int(texts, "width", 1024, 256, 1920)
        height = _int(texts, "height", 768, 256, 1920)
        _int(texts, "steps", 25, 1, 50)
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
            if info.width >= 512 or info.height >= 512:
                raise _invalid(f"{name} must be smaller than 512x512")
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        fingerprint = hashlib.sha256(
            repr(sorted(texts.items())).encode()
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
