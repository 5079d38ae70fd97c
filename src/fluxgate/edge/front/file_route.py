"""``GET|HEAD /v1/files/...`` on Workers, before FastAPI: R2's stream straight into the
Response.

The download itself is :func:`~fluxgate.delivery.downloads.download`, the local runtime's
too, over the ports of the isolate's gateway (its signer, R2, its variant maker, the Cache
API, the generator's ``forget``), all made once per isolate. This route only describes the
JS request to it and turns its answer into a JS ``Response``: the body is the stream R2 (or
the edge cache) gave, so the image bytes never enter Python; the edge cache's write runs
after the response (``waitUntil``). The ASGI bridge is skipped: for the hottest route it
would cost as much CPU as the download itself.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from js import Response

from ...access.audit import audit_refusal
from ...delivery.downloads import FileAnswer, FileRequest, download
from ...delivery.files import FILES_ROUTE, query_params
from ...errors import ApiError
from ...request_context import note_route
from ..ffi import js_object, js_text, wait_until
from .gateway_env import gateway_from_env
from .js_errors import error_response


def file_request(raw: Any) -> FileRequest:
    """The JS ``Request`` as a download reads it. Its URL is as workerd parsed it (dot
    segments resolved, percent-encoding kept): the path as signed."""
    url = urlsplit(str(raw.url))
    headers = raw.headers
    return FileRequest(
        method=str(raw.method),
        path=url.path,
        query=query_params(url.query),
        if_none_match=js_text(headers.get("if-none-match")),
        range=js_text(headers.get("range")),
        origin=f"{url.scheme}://{url.netloc}",
        hostname=url.hostname,
    )


async def serve_file(raw: Any, env: Any, ctx: Any) -> Any:
    """Answer a signed download; ``raw`` is the JS ``Request``. A refusal is audited (its
    path, never the query with its signature) and answered with the error's one rendering,
    as the local server's route does; a fault propagates to the envelope
    (``js_envelope.py``), the Worker's one catch-all."""
    note_route(FILES_ROUTE)
    request = file_request(raw)
    try:
        answer = await download(request, gateway_from_env(env).downloads)
    except ApiError as exc:
        audit_refusal(exc, principal=None, prompt=None, include_prompt=False, path=request.path)
        return error_response(exc)
    if answer.after is not None:
        if ctx is None:  # no event to extend (a direct call): finish it now
            await answer.after
        else:
            wait_until(ctx, answer.after)
    return js_response(answer)


def js_response(answer: FileAnswer) -> Any:
    stream = None if answer.body is None else answer.body.stream
    body = None if stream is None else stream()
    return Response.new(body, js_object({"status": answer.status, "headers": answer.headers}))
