"""Errors that reach clients, with stable machine-readable codes.

Every failure a client can see is an :class:`ApiError`. The JSON shape is
``{"error": {"code", "message", "type", "param", ...}}``: ``code`` is the stable identifier
clients branch on, and the ``type``/``param`` pair keeps the body compatible with the
OpenAI error shape many image clients already parse.

An error becomes a response in one place, :func:`rendered` (status, headers, body), which
each runtime only wraps in its own response type; and a fault nothing handled is turned into
the one ``500`` by :func:`unhandled`, called by each runtime's outermost layer only, so both
runtimes log it and answer it identically.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from .request_context import current_request_id

# The OpenAI-style ``type`` of an error, by status: the statuses with a type of their own,
# then every other client error (409, 410, 416 ...) is an ``invalid_request_error`` and
# every server error an ``api_error``. One place: ``ApiError.type`` is all that reads it.
_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    """The OpenAI-style ``type`` for an HTTP status."""
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"


class ApiError(Exception):
    """A failure with an HTTP status and a stable ``code``; safe to show to clients."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = headers or {}
        self.extra = extra

    @property
    def type(self) -> str:
        return error_type(self.status)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "type": self.type,
            "param": self.param,
        }
        body.update(self.extra)
        request_id = current_request_id()
        if request_id is not None:  # what a client quotes to support (request_context.py)
            body["request_id"] = request_id
        return {"error": body}

    def to_json(self) -> str:
        """The body, in ASCII JSON: a message that quotes client input (a parameter name
        with a lone surrogate, say) must still encode, or the error becomes a 500."""
        return json.dumps(self.to_dict(), ensure_ascii=True, allow_nan=False, separators=(",", ":"))

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


BEARER_REALM = 'Bearer realm="fluxgate"'


def unauthorized(code: str, message: str, *, invalid_token: bool) -> ApiError:
    """A 401 with its ``WWW-Authenticate`` challenge (RFC 6750): ``error="invalid_token"``
    when a credential was sent and refused, the bare realm when none was sent."""
    challenge = f'{BEARER_REALM}, error="invalid_token"' if invalid_token else BEARER_REALM
    return ApiError(401, code, message, headers={"WWW-Authenticate": challenge})


# A bug: the details go to the server log only.
INTERNAL_ERROR = ApiError(500, "internal_error", "Internal error.")

log = logging.getLogger("fluxgate.app")


@dataclass(frozen=True)
class RenderedError:
    """An error as a response, in no runtime's types: header names in lower case (as ASGI
    requires; the Fetch API's headers ignore case)."""

    status: int
    headers: dict[str, str]
    body: str


def rendered(error: ApiError) -> RenderedError:
    """The one rendering of an :class:`ApiError`: its status, its own headers and the JSON
    content type, its JSON body (with the request id, read now)."""
    headers = {name.lower(): value for name, value in error.headers.items()}
    headers["content-type"] = "application/json"
    return RenderedError(error.status, headers, error.to_json())


def unhandled(exc: BaseException) -> ApiError:
    """A fault no handler took, at a runtime's outermost layer: one log line with its
    traceback (server side only), and the ``500 internal_error`` the client gets. Inner
    layers let faults propagate to it, so that both runtimes say the same once."""
    log.error("unhandled error", exc_info=exc)
    return INTERNAL_ERROR


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


def storage_unavailable(detail: str) -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        f"Image storage failed: {detail}. Retry later.",
        headers={"Retry-After": "5"},
    )
