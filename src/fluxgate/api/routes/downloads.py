"""Signed downloads through FastAPI: ``GET|HEAD /v1/files/images/<sha256>.<ext>`` and its
variants, ``.../images/<sha256>.<ext>/<width>.<format>``.

The local runtime serves them here. On Workers the same URLs are answered before FastAPI
is involved (:mod:`fluxgate.edge.front.downloads`); both read their rules from
:mod:`fluxgate.delivery.files`.
A variant is made on its first request (:class:`~fluxgate.delivery.variants.VariantMaker`) and then
served like an original: the same Range, HEAD and conditional requests.

The signature is checked over the path as the client sent it (:func:`wire_path`), never
over the path the server decoded: uvicorn percent-decodes ``scope["path"]``, so
``.../<sha>.png%2F256.webp`` would read as the signed ``.../<sha>.png/256.webp`` and a
``%3F`` or ``%23`` suffix would end up outside the path. One spelling, the one signed, is
accepted, as on the Worker (which is handed the URL as workerd parsed it: dot segments
resolved, percent-encoding kept).
"""

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ...delivery import files
from ...delivery.variants import unavailable
from ...errors import not_found
from ...service.gateway import Gateway
from ..deps import Gw
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
    now = gw.clock()
    target, expires = files.authorize(
        wire_path(request), request.query_params, request.method, gw.signer, now
    )
    if target.variant is not None and gw.variants is None:
        raise unavailable()
    key = target.object_key
    headers = files.response_headers(target, expires, now)
    # A 304 says "your copy is still the resource": only while its original is stored (a
    # deleted image must not be revalidated; a variant can always be made again). A HEAD.
    revalidating = files.matches_if_none_match(
        request.headers.get("if-none-match"), headers["ETag"]
    )
    if revalidating and await gw.objects.head(target.original_key) is not None:
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if request.method == "GET" and not range_header:  # the common case: one storage call
        obj = await gw.objects.get(key)
        if obj is None and await _made(gw, target):
            obj = await gw.objects.get(key)
        if obj is None:
            await _drop_stale_entry(gw, request)
            raise not_found("file")
        headers["Content-Length"] = str(obj.info.size)
        return StreamingResponse(obj.chunks, headers=headers, media_type=obj.info.content_type)
    info = await gw.objects.head(key)
    if info is None and await _made(gw, target):
        info = await gw.objects.head(key)
    if info is None:
        await _drop_stale_entry(gw, request)
        raise not_found("file")
    if request.method == "HEAD":
        headers["Content-Length"] = str(info.size)
        return Response(status_code=200, headers=headers, media_type=info.content_type)
    wanted = files.parse_range(range_header, info.size)
    obj = await gw.objects.get(key, None if wanted is None else (wanted.start, wanted.end))
    if obj is None:
        raise not_found("file")
    if wanted is None:
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(obj.chunks, headers=headers, media_type=info.content_type)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(info.size)
    return StreamingResponse(
        obj.chunks, status_code=206, headers=headers, media_type=info.content_type
    )


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


async def _made(gw: Gateway, target: files.FileTarget) -> bool:
    """Make a missing variant from its original; ``False`` for an original (nothing to
    make) or when the original is gone."""
    if target.variant is None or gw.variants is None:
        return False
    return await gw.variants.ensure(target.original_key, target.variant)


async def _drop_stale_entry(gw: Gateway, request: Request) -> None:
    """The object behind a signed URL is gone: drop the cache entry that produced the URL."""
    entry = files.signed_cache_entry(request.query_params)
    if entry is not None:
        await gw.generator.forget(entry)
