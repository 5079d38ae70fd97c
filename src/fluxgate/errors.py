"""Errors that reach clients, with stable machine-readable codes.

Every failure a client can see is an :class:`ApiError`. The JSON shape is
``{"error": {"code", "message", "type", "param", ...}}``: ``code`` is the stable identifier
clients branch on, and the ``type``/``param`` pair keeps the body compatible with the
OpenAI error shape many image clients already parse. This module is pydantic-free because
the Workers file route imports it.
"""

from __future__ import annotations

from typing import Any

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


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
        return _TYPES.get(self.status, "api_error")

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "type": self.type,
            "param": self.param,
        }
        body.update(self.extra)
        return {"error": body}

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r})"


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"No such {what}.")


def storage_unavailable(detail: str) -> ApiError:
    return ApiError(
        503,
        "storage_unavailable",
        f"Image storage failed: {detail}. Retry later.",
        headers={"Retry-After": "5"},
    )
