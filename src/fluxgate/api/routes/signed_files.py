"""Signed downloads through FastAPI: ``GET|HEAD /v1/files/images/<sha256>.<ext>`` and its
variants, ``.../images/<sha256>.<ext>/<width>.<format>``.

The local runtime serves them here; the Worker answers the same URLs before FastAPI is
involved (``edge/front/file_route.py``). Both run one download,
:func:`~fluxgate.delivery.downloads.download`, over their gateway's ports: this route only
describes the request to it and streams its answer. Every other method is the download's to
refuse (``405``, as on the Worker), so it is routed here too, outside the schema.

The signature is checked over the path as the client sent it (:func:`wire_path`), never
over the path the server decoded: uvicorn percent-decodes ``scope["path"]``, so
``.../<sha>.png%2F256.webp`` would read as the signed ``.../<sha>.png/256.webp`` and a
``%3F`` or ``%23`` suffix would end up outside the path. One spelling, the one signed, is
accepted, as on the Worker (which is handed the URL as workerd parsed it: dot segments
resolved, percent-encoding kept).
"""

from collections.abc import Awaitable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ...delivery import files
from ...delivery.downloads import FileAnswer, FileRequest, download
from ..deps import Gw, gateway
from ..schemas import ErrorBody

_FILE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}, "image/avif": {}},
        "description": "The image, or the variant the path names (made on first request)",
    },
    206: {"description": "Partial content (a `Range` request)"},
    304: {"description": "Not modified"},
    403: {"model": ErrorBody, "description": "Bad or expired signature"},
    404: {"model": ErrorBody, "description": "No such file"},
    405: {"model": ErrorBody, "description": "Only GET and HEAD"},
    416: {"model": ErrorBody, "description": "Range outside the file"},
    501: {"model": ErrorBody, "description": "Variants are not available on this deployment"},
    502: {"model": ErrorBody, "description": "The variant could not be made"},
    503: {
        "model": ErrorBody,
        "description": "File access not configured, or too many variants being made at once "
        "(`variants_busy`, with `Retry-After`)",
    },
}


router = APIRouter(tags=["images"])


@router.api_route(
    files.FILES_ROUTE,
    methods=["GET", "HEAD"],
    operation_id="download_file",
    summary="Download an image through its signed URL (GET or HEAD)",
    description="Every stored image and variant carries AI-disclosure XMP (IPTC "
    "`DigitalSourceType` = `trainedAlgorithmicMedia`, the generator in `xmp:CreatorTool`, "
    "the creation time in `xmp:CreateDate`) unless the deployment sets `AI_DISCLOSURE=false`. "
    "A variant path (`.../<width>.<format>`) is made on its first request.",
    responses=_FILE_RESPONSES,
)
async def get_file(request: Request, object_key: str, gw: Gw) -> Response:
    return response(await download(file_request(request), gw.downloads))


class OtherMethods:
    """Any other method, refused by the download itself (``405``, ``Allow: GET, HEAD``), as
    on the Worker: Starlette's own 405 would differ. An ASGI app rather than a function, so
    that its route takes every method, known to Python or not."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        gw = await gateway(request)
        answer = response(await download(file_request(request), gw.downloads))
        await answer(scope, receive, send)


# Added after the GET/HEAD route, which keeps those.
router.routes.append(Route(files.FILES_ROUTE, OtherMethods(), include_in_schema=False))


def file_request(request: Request) -> FileRequest:
    url = request.url
    return FileRequest(
        method=request.method,
        path=wire_path(request),
        query=request.query_params,
        if_none_match=request.headers.get("if-none-match"),
        range=request.headers.get("range"),
        origin=f"{url.scheme}://{url.netloc}",
        hostname=url.hostname,
    )


def response(answer: FileAnswer) -> Response:
    """The answer as a Starlette response: the object's chunks streamed as read; work for
    after it (``after``: an edge cache's write, none here) run once it is sent."""
    after = None if answer.after is None else BackgroundTask(_finish, answer.after)
    if answer.body is None:
        return Response(status_code=answer.status, headers=answer.headers, background=after)
    chunks = answer.body.chunks
    return StreamingResponse(chunks, answer.status, headers=answer.headers, background=after)


async def _finish(work: Awaitable[Any]) -> None:
    await work


def wire_path(request: Request) -> str:
    """The request's path as it was on the wire (the ASGI ``raw_path``: percent-encoding
    kept, no query, which uvicorn, Starlette's test client and httpx's ASGI transport all
    give), parsed as workerd parses a Worker's URL (:func:`~fluxgate.delivery.files.url_path`: dot
    segments resolved, nothing decoded). A server that gives no ``raw_path`` gets the
    decoded path re-encoded: a ``%3F`` or ``%23`` spelling still fails its signature, only
    a ``%2F`` could not be told from a ``/``."""
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        return files.url_path(raw.partition(b"?")[0].decode("latin-1"))
    return quote(request.scope.get("root_path", "") + request.scope["path"], safe="/")
