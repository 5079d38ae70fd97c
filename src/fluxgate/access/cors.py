"""Cross-origin access for browser apps: which origins may call the API, and how.

Off by default (``CORS_ALLOWED_ORIGINS`` empty): a page on another origin cannot read any
response, which is right for an API whose keys must stay on servers. A browser app that
uses client tokens (``fgt_…``, minted by its backend) names its origins, or ``*``.
Credentials travel in ``Authorization`` only, never cookies, so no response ever says
``Access-Control-Allow-Credentials``, and ``*`` does not expose anything a cookie would.

A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an
allowed origin is answered ``204`` by the outermost layer of each runtime, before any
route; from any other origin ``403 cors_origin_not_allowed``, whose missing
``Access-Control-Allow-Origin`` makes the browser refuse the real request. Responses to
an allowed origin expose the headers a client paces and debugs with. Pydantic-free and
``js``-free: the Worker answers preflights before FastAPI is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ApiError

ALLOWED_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE"
ALLOWED_HEADERS = (
    "Authorization, Content-Type, Cache-Control, Prefer, Idempotency-Key, X-Request-Id, "
    "If-None-Match, Range, X-Firebase-AppCheck"
)
EXPOSED_HEADERS = (
    "X-Request-Id, X-Cache, X-Fluxgate-Model, RateLimit-Limit, RateLimit-Remaining, "
    "RateLimit-Reset, RateLimit-Policy, Retry-After, Location, ETag, Content-Range, "
    "Server-Timing, WWW-Authenticate"
)
MAX_AGE_SECONDS = 600  # browsers cap it lower (Chromium: 2 h); 10 min keeps changes quick

# A header-name list as Access-Control-Request-Headers carries it (RFC 9110 tokens).
_HEADER_LIST = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*")
_MAX_REQUESTED_HEADERS = 1024

_ORIGIN = re.compile(r"https?://[a-z0-9.-]+(:[0-9]{1,5})?|https?://\[[0-9a-f:.]+\](:[0-9]{1,5})?")


class CorsConfigError(ValueError):
    pass


def parse_origins(spec: str) -> tuple[str, ...]:
    """``CORS_ALLOWED_ORIGINS``: ``*``, or origins separated by commas (or a JSON-style
    list), each ``scheme://host[:port]`` exactly as a browser sends ``Origin``: no path,
    no trailing slash. Raises :class:`CorsConfigError` naming the first bad entry."""
    text = spec.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    origins = [part.strip().strip("\"'") for part in text.split(",")]
    origins = [origin for origin in origins if origin]
    if origins == ["*"]:
        return ("*",)
    for origin in origins:
        if origin == "*":
            raise CorsConfigError("'*' must be the only entry of CORS_ALLOWED_ORIGINS")
        if not _ORIGIN.fullmatch(origin):
            raise CorsConfigError(
                f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin "
                "(scheme://host[:port], lower case, no path)"
            )
    return tuple(dict.fromkeys(origins))


@dataclass(frozen=True)
class Preflight:
    status: int
    headers: dict[str, str]


@dataclass(frozen=True)
class CorsPolicy:
    """The allowed origins (``("*",)`` for any; empty for none)."""

    origins: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.origins)

    def allows(self, origin: str | None) -> bool:
        return origin is not None and (self.origins == ("*",) or origin in self.origins)

    def _allow_origin(self, origin: str) -> dict[str, str]:
        if self.origins == ("*",):
            return {"Access-Control-Allow-Origin": "*"}
        # The answer depends on Origin: a shared cache must key on it.
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    def preflight(self, origin: str | None, requested_headers: str | None = None) -> Preflight:
        """The answer to a preflight request (see :func:`is_preflight`).

        The request headers a page asks for are allowed as asked (when they are a header
        list): no credentials mode means a header cannot carry anything the page's own
        token does not, and clients send their own (the OpenAI SDK's ``X-Stainless-*``).
        Without a list, the API's own headers are named."""
        if origin is None or not self.allows(origin):
            return Preflight(403, {})
        asked = (requested_headers or "").strip()
        allowed = (
            asked
            if len(asked) <= _MAX_REQUESTED_HEADERS and _HEADER_LIST.fullmatch(asked)
            else ALLOWED_HEADERS
        )
        headers = self._allow_origin(origin)
        headers.update(
            {
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": allowed,
                "Access-Control-Max-Age": str(MAX_AGE_SECONDS),
            }
        )
        return Preflight(204, headers)

    def response_headers(self, origin: str | None) -> dict[str, str]:
        """What an actual response adds for ``origin``. With named origins every response
        varies on ``Origin``, also one without it (an ``<img>`` load of a signed URL): a
        browser cache must not hand that copy, without CORS headers, to an allowed page's
        ``fetch``."""
        if not self.enabled:
            return {}
        if origin is None or not self.allows(origin):
            return {} if self.origins == ("*",) else {"Vary": "Origin"}
        headers = self._allow_origin(origin)
        headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        return headers


def is_preflight(method: str, header: Callable[[str], str | None]) -> bool:
    return (
        method == "OPTIONS"
        and header("origin") is not None
        and header("access-control-request-method") is not None
    )


ORIGIN_REFUSED = ApiError(
    403,
    "cors_origin_not_allowed",
    "This origin may not call the API from a browser (CORS_ALLOWED_ORIGINS).",
)
NO_CORS = CorsPolicy()
_policies: dict[str, CorsPolicy] = {}


def policy_for(spec: str | None) -> CorsPolicy:
    """The policy for a setting's text, parsed once per value (the Worker reads the raw
    variable on every request; a bad value allows nothing and is reported by the app's
    settings check as ``server_misconfigured``)."""
    if not spec:
        return NO_CORS
    found = _policies.get(spec)
    if found is None:
        try:
            found = CorsPolicy(parse_origins(spec))
        except CorsConfigError:
            found = NO_CORS
        _policies.clear()
        _policies[spec] = found
    return found
