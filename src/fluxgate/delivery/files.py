"""The signed-file route's rules, shared by the Workers and local runtimes.

A signed path names an original (``images/<sha256>.<ext>``) or one of its variants
(``images/<sha256>.<ext>/<width>.<format>``, stored under ``variants/<sha256>/...``: see
:mod:`fluxgate.delivery.variants`). Both are content-addressed, so the ETag is known from the path
alone: a conditional request is answered with 304 after a HEAD only (no body read), which
also sees that a deleted image is gone.
Pydantic-free: the Workers file route imports this without loading FastAPI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from ..errors import ApiError
from ..store import keyspace
from .signing import UrlSigner, is_decimal
from .variants import Variant, variant_etag, variant_key

FILES_PREFIX = "/v1/files/"
FILES_ROUTE = FILES_PREFIX + "{object_key:path}"  # the route template both runtimes log
_OBJECT_KEY = re.compile(r"^images/([0-9a-f]{64})\.(png|jpg|webp)$")
_VARIANT_PATH = re.compile(r"^(images/[0-9a-f]{64}\.(?:png|jpg|webp))/([^/]+)$")
MAX_CLIENT_CACHE_SECONDS = 86400


# WHATWG URL path parsing: what workerd (and Cloudflare's edge) makes of a request's path
# before a Worker sees it. The local runtime applies the same, so that one request line
# gets one answer on both.
_SINGLE_DOT = frozenset({".", "%2e"})
_DOUBLE_DOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})


def url_path(raw_path: str) -> str:
    """A path as sent (percent-encoding kept) as the URL Standard parses it: a backslash is
    a slash, ``.`` and ``..`` segments (``%2e`` spelled or not, either case) are resolved.
    Nothing else changes: ``%2F`` stays data, not a separator, and any other
    percent-encoding stays as sent, so that every spelling but the signed one fails its
    signature."""
    if not raw_path.startswith(("/", "\\")):
        return raw_path
    kept: list[str] = []
    segments = raw_path[1:].replace("\\", "/").split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        lowered = segment.lower()
        if lowered in _DOUBLE_DOT:
            if kept:
                kept.pop()
        elif lowered not in _SINGLE_DOT:
            kept.append(segment)
            continue
        if last:  # "/a/.." is "/", "/a/." is "/a/": a directory, with its slash
            kept.append("")
    return "/" + "/".join(kept)


def object_path(object_key: str) -> str:
    return FILES_PREFIX + object_key


_CACHE_KEY = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileTarget:
    """What a signed path names: an original, or a variant of one."""

    original_key: str  # images/<sha256>.<ext>
    variant: Variant | None = None

    @property
    def object_key(self) -> str:
        """Where the bytes are stored."""
        if self.variant is None:
            return self.original_key
        return variant_key(self.original_key, self.variant)

    @property
    def etag(self) -> str:
        if self.variant is None:
            return etag_for(self.original_key)
        return variant_etag(self.original_key, self.variant)


def query_params(query: str) -> dict[str, str]:
    """A query string as ``dict(urllib.parse.parse_qsl(query))`` reads it (the last of a
    repeated name wins, a name without a value is dropped). A query with nothing to
    unescape (no ``%``, no ``+``: every signed URL's) is split directly, which is what
    ``parse_qsl`` then does at several times the cost: on Workers it was a third of a
    download's CPU."""
    if "%" in query or "+" in query:
        return dict(parse_qsl(query))
    params = {}
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value:
            params[name] = value
    return params


def file_target(path_key: str) -> FileTarget | None:
    """The target of a path below ``/v1/files/``, or ``None`` when it names nothing that
    can exist (a width or format outside the fixed set included)."""
    if _OBJECT_KEY.match(path_key):
        return FileTarget(path_key)
    match = _VARIANT_PATH.match(path_key)
    variant = None if match is None else Variant.parse(match.group(2))
    return None if match is None or variant is None else FileTarget(match.group(1), variant)


def variant_path(original_key: str, variant: Variant) -> str:
    """The signed URL path of a variant."""
    return f"{object_path(original_key)}/{variant.name}"


def authorize(
    path: str, query: Mapping[str, str], method: str, signer: UrlSigner, now: float
) -> tuple[FileTarget, int]:
    """Return ``(target, expires)`` for a validly signed file request, else raise.

    The signature is checked first: a path that was never signed is a 403 whatever it
    names. A signed path naming no possible file (a variant outside the set cannot be
    signed by the gateway, which signs only the names it validated) is a 404."""
    if method.upper() not in ("GET", "HEAD"):
        raise ApiError(
            405,
            "method_not_allowed",
            "Files support GET and HEAD only.",
            headers={"Allow": "GET, HEAD"},
        )
    expires = signer.verify(path, query, now, method=method)
    key = path[len(FILES_PREFIX) :] if path.startswith(FILES_PREFIX) else ""
    target = file_target(key)
    if target is None:
        raise ApiError(404, "not_found", "No such file.")
    return target, expires


def signed_cache_entry(query: Mapping[str, str]) -> str | None:
    """The KV cache key a verified URL was made from (to drop it when the object is gone)."""
    value = query.get("c") or ""
    return keyspace.cache_entry(value) if _CACHE_KEY.match(value) else None


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


def response_headers(target: FileTarget, expires: int, now: float) -> dict[str, str]:
    """Caching headers: private, and never outliving the URL that authorised the fetch."""
    max_age = max(0, min(int(expires - now), MAX_CLIENT_CACHE_SECONDS))
    return {
        "ETag": target.etag,
        "Cache-Control": f"private, max-age={max_age}",
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
    }


# What the edge cache keeps: objects are content-addressed, so a copy never goes stale.
EDGE_CACHE_CONTROL = "public, max-age=31536000, immutable"


def edge_cache_applies(hostname: str | None) -> bool:
    """Whether the Workers Cache API does anything for this host: it has no effect on
    ``*.workers.dev`` (Cloudflare's Cache API documentation), only on a route or custom
    domain of a zone. There a lookup would always miss and a put would be discarded, so
    neither is made, and no ``X-Edge-Cache`` status is claimed."""
    host = (hostname or "").rstrip(".").lower()
    return not (host == "workers.dev" or host.endswith(".workers.dev"))


def edge_cache_url(origin: str, object_key: str) -> str:
    """The Cache API key of an object: by object, not by signature, so every signed URL of
    one image shares one cached copy."""
    return f"{origin}/__fluxgate/objects/{object_key}"


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end}/{size}"


def unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "range_not_satisfiable",
        "The requested range is outside the file.",
        headers={"Content-Range": f"bytes */{size}"},
    )


# A position past any file: what a Range number too long to convert means.
_PAST_ANY_FILE = 1 << 63


def _position(text: str) -> int | None:
    """A byte position of a ``Range`` header, or ``None`` if it is not one.

    RFC 9110's ``1*DIGIT`` is ASCII digits of any length: leading zeros are dropped, and a
    number too long to be any file's offset reads as "past the end" without being
    converted (``int()`` refuses more than 4300 digits and is slow well before that).
    """
    if not is_decimal(text):
        return None
    significant = text.lstrip("0") or "0"
    return int(significant) if len(significant) <= 18 else _PAST_ANY_FILE


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """One ``bytes=`` range (RFC 9110); ``None`` means the whole file.

    A syntactically invalid or multi-range header is ignored (the whole file is served, as
    the RFC allows); a valid range outside the file is a 416. No header value raises
    anything else.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, dash, last_text = spec.strip().partition("-")
    if not dash:
        return None
    first = _position(first_text) if first_text else None
    last = _position(last_text) if last_text else None
    malformed = (first_text and first is None) or (last_text and last is None)
    if malformed or (first is None and last is None):
        return None
    if first is None:  # suffix: the last N bytes
        assert last is not None  # one of the two is set (checked above)
        if last == 0 or size == 0:
            raise unsatisfiable(size)
        return ByteRange(max(0, size - last), size - 1)
    if last is not None and last < first:
        return None
    if first >= size:
        raise unsatisfiable(size)
    return ByteRange(first, size - 1 if last is None else min(last, size - 1))
