"""``GET /v1/files/...`` on Workers: R2's body stream goes straight into the Response.

Handled before FastAPI is imported: a download needs neither pydantic nor the app, and
the image bytes never enter Python.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from js import Response

from .. import files
from ..errors import ApiError, not_found
from ..signing import SigningConfigError
from .config import signer_from_env
from .ffi import is_nullish, js_object, js_text, unwrap

log = logging.getLogger("fluxgate.edge.files")


def error_response(error: ApiError) -> Any:
    headers = {"Content-Type": "application/json", **error.headers}
    return Response.new(
        json.dumps(error.to_dict()), js_object({"status": error.status, "headers": headers})
    )


async def serve_file(request: Any, env: Any, bucket_name: str = "IMAGES") -> Any:
    """Answer a signed download; ``request`` is the JS ``Request``."""
    url = urlsplit(str(request.url))
    method = str(request.method).upper()
    now = time.time()
    try:
        signer = signer_from_env(env)
    except SigningConfigError:
        log.error("URL_SIGNING_KEYS is missing or invalid")
        return error_response(
            ApiError(503, "server_misconfigured", "File access is not configured.")
        )
    try:
        key, expires = files.authorize(url.path, dict(parse_qsl(url.query)), method, signer, now)
    except ApiError as exc:
        return error_response(exc)
    headers = files.response_headers(key, expires, now)
    if files.matches_if_none_match(js_text(request.headers.get("if-none-match")), headers["ETag"]):
        return Response.new(None, js_object({"status": 304, "headers": headers}))

    bucket = unwrap(getattr(env, bucket_name))
    obj = await (bucket.head(key) if method == "HEAD" else bucket.get(key))
    if is_nullish(obj):
        return error_response(not_found("file"))
    http = obj.httpMetadata
    headers["Content-Type"] = (
        None if is_nullish(http) else js_text(http.contentType)
    ) or "application/octet-stream"
    headers["Content-Length"] = str(int(obj.size))
    body = None if method == "HEAD" else obj.body
    return Response.new(body, js_object({"status": 200, "headers": headers}))
