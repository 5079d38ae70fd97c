"""The signed-file route's rules, shared by the Workers and local runtimes.

Objects are content-addressed (``images/<sha256>.<ext>``), so the ETag is known from the
path alone: a conditional request is answered with 304 before any storage read.
Pydantic-free: the Workers file route imports this without loading FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .errors import ApiError
from .signing import UrlSigner

FILES_PREFIX = "/v1/files/"
_OBJECT_KEY = re.compile(r"^images/([0-9a-f]{64})\.(png|jpg|webp)$")
MAX_CLIENT_CACHE_SECONDS = 86400


def object_path(object_key: str) -> str:
    return FILES_PREFIX + object_key


def authorize(
    path: str, query: Mapping[str, str], method: str, signer: UrlSigner, now: float
) -> tuple[str, int]:
    """Return ``(object_key, expires)`` for a validly signed file request, else raise."""
    if method.upper() not in ("GET", "HEAD"):
        raise ApiError(
            405,
            "method_not_allowed",
            "Files support GET and HEAD only.",
            headers={"Allow": "GET, HEAD"},
        )
    expires = signer.verify(path, query, now, method=method)
    key = path[len(FILES_PREFIX) :] if path.startswith(FILES_PREFIX) else ""
    if not _OBJECT_KEY.match(key):
        raise ApiError(404, "not_found", "No such file.")
    return key, expires


def etag_for(object_key: str) -> str:
    match = _OBJECT_KEY.match(object_key)
    return f'"{match.group(1)}"' if match else '""'


def matches_if_none_match(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return etag in tags


def response_headers(object_key: str, expires: int, now: float) -> dict[str, str]:
    """Caching headers: private, and never outliving the URL that authorised the fetch."""
    max_age = max(0, min(int(expires - now), MAX_CLIENT_CACHE_SECONDS))
    return {
        "ETag": etag_for(object_key),
        "Cache-Control": f"private, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "none",
    }
