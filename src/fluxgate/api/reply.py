"""The generation handler's answer, as every runtime sends it: status, headers, JSON text.

A ``b64_json`` answer carries its image as a handle, not as text: the body is ``prefix``,
the image in base64, then ``suffix``. Each runtime splices the base64 in its cheapest way:
on Workers in JS (the base64 of a megabyte image never becomes a Python string), locally
through Python once. The JSON is rendered with a random placeholder (:func:`b64_mark`)
where the base64 goes, then split around it.

Framework-free: the FastAPI route, the local server's fast path and the Worker's all turn a
:class:`Reply` into their own response.
"""

from __future__ import annotations

import functools
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import ApiError, rendered
from ..imaging.image_bytes import ImageBytes

JSON = "application/json"


@functools.cache
def b64_mark() -> str:
    """Stands for the base64 of the image in a ``b64_json`` body until the runtime splices
    it in: random, so no value a client chose (a prompt, an end-user id) can contain it.
    Made on first use, never at import: workerd refuses randomness while a Worker starts
    (the values would repeat across isolates restored from the deploy-time snapshot)."""
    return secrets.token_hex(16)


def render(content: dict[str, Any]) -> str:
    """A JSON body as Starlette's ``JSONResponse`` renders one (kept answers are replayed
    byte for byte, so there is one rendering)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class Reply:
    """A response. With ``image`` the body is ``prefix``, the image's base64, then
    ``suffix``; otherwise ``prefix`` is the whole body. ``headers`` include the
    ``content-type``."""

    status: int
    headers: dict[str, str]
    prefix: str
    suffix: str = ""
    image: ImageBytes | None = None

    async def text(self) -> str:
        """The whole body, the base64 made in Python (where the runtime has no cheaper way)."""
        if self.image is None:
            return self.prefix
        return self.prefix + await self.image.base64() + self.suffix


def json_reply(
    status: int,
    content: dict[str, Any],
    headers: dict[str, str],
    image: ImageBytes | None = None,
) -> Reply:
    """``content`` as the body; with ``image``, ``content`` holds :func:`b64_mark` where the
    image's base64 goes (``data[0].b64_json``)."""
    text = render(content)
    headers = {**headers, "content-type": JSON}
    if image is None:
        return Reply(status, headers, text)
    prefix, suffix = text.split(b64_mark(), 1)
    return Reply(status, headers, prefix, suffix, image)


def refused(error: ApiError) -> Reply:
    """A refusal, as every runtime renders one (:func:`~fluxgate.errors.rendered`)."""
    answer = rendered(error)
    return Reply(answer.status, answer.headers, answer.body)
