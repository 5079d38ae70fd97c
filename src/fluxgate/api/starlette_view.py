"""The generation handler under Starlette: its view of a request, its reply as a response.

Used by both of the local server's ways in (the FastAPI route and the fast-path middleware)
and by the route on the Worker, so that a request is described, and its answer sent, the
same way whichever called the handler. Multipart bodies are split into parts here, with
Starlette's parser: the handler decides what the parts mean
(:func:`~.request_body.form_generation`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator

from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.responses import Response

from ..errors import ApiError
from ..model.family import MAX_REFERENCE_IMAGES
from ..model.references import too_many
from .generate import RequestView
from .reply import Reply
from .request_body import read_capped


def request_view(request: Request, client: str) -> RequestView:
    """``request`` as the handler reads it; ``client``: who sent it (the app's
    ``client_address``). The body is read only when the handler asks for it."""
    headers = request.headers

    async def body(limit: int) -> bytes:
        return await read_capped(request.stream(), headers.get("content-length"), limit)

    return RequestView(
        method=request.method,
        path=request.url.path,
        header=headers.get,
        body=body,
        client=client,
        base_url=str(request.base_url),
    )


async def response(reply: Reply) -> Response:
    """The reply as a Starlette response (a ``b64_json`` body's base64 made in Python)."""
    return Response(await reply.text(), status_code=reply.status, headers=reply.headers)


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def form_parts(
    content_type: str, body: bytes, max_part: int
) -> list[tuple[str, str | bytes]]:
    """A multipart body's parts (:data:`~.request_body.FormParser`): at most one file more
    than the reference images (so that one too many is told apart) and 32 fields."""
    parser = MultiPartParser(
        Headers({"content-type": content_type}),
        _once(body),
        max_files=MAX_REFERENCE_IMAGES + 1,
        max_fields=32,
        max_part_size=max_part,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if "files" in str(exc).lower():
            raise too_many() from None
        raise ApiError(400, "invalid_multipart", f"Malformed multipart body: {exc}") from None
    try:
        return [
            (name, await value.read() if isinstance(value, UploadFile) else value)
            for name, value in form.multi_items()
        ]
    finally:
        await form.close()
