"""Dependencies shared by the API routers: the gateway, the caller, the admin check."""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .audit import audit
from .auth import SCOPE_ADMIN, TOKEN_PREFIX, Principal, bearer_token, check_admin
from .errors import ApiError
from .models import ErrorBody
from .pipeline import Gateway

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="An API key (`fgk_...`) or a client token (`fgt_...`).",
)
admin_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="AdminToken",
    description="The admin token (`ADMIN_TOKEN` secret), or an API key with the admin scope.",
)


def error_responses(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses, all with the one error body."""
    return {
        status: {"model": ErrorBody, "description": text} for status, text in descriptions.items()
    }


ERRORS = error_responses(
    {
        400: "Invalid request or prompt policy violation",
        401: "Missing, unknown, expired or revoked credential",
        403: "Missing scope or over a tier limit",
        404: "No such image, model or key",
        413: "Body or reference image too large",
        415: "Unsupported content type",
        429: "Rate limit, daily budget or upstream rate limit",
        502: "Model failure",
        503: "Model out of capacity, moderation or storage unavailable",
        504: "Model timeout",
    }
)


ADMIN_ERRORS = error_responses(
    {
        400: "Invalid request",
        401: "Missing or invalid admin credential",
        403: "Admin disabled, or the key lacks the admin scope",
        404: "No such key",
        409: "Revoked key, or the policy version does not increase",
    }
)


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status, headers=error.headers)


async def gateway(request: Request) -> Gateway:
    resolved = request.app.state.resolve(request)
    gw: Gateway = await resolved if hasattr(resolved, "__await__") else resolved
    request.state.gateway = gw  # the error handlers read settings from it
    return gw


Gw = Annotated[Gateway, Depends(gateway)]


async def authenticated(request: Request, gw: Gateway) -> Principal:
    principal = await gw.authenticate(request.headers.get("authorization"))
    request.state.principal = principal
    return principal


async def caller(
    request: Request,
    gw: Gw,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    return await authenticated(request, gw)


Caller = Annotated[Principal, Depends(caller)]


class AdminActor:
    """Who performed an admin action, for the audit log: the admin token, or a key id."""

    def __init__(self, key_id: str | None) -> None:
        self.key_id = key_id

    def audit(self, action: str, **details: Any) -> None:
        audit(
            action,
            key_id=self.key_id,
            actor="admin_token" if self.key_id is None else "key",
            **details,
        )


async def admin(
    request: Request,
    gw: Gw,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_scheme)],
) -> AdminActor:
    header = request.headers.get("authorization")
    if check_admin(header, gw.admin_token):
        return AdminActor(None)
    token = bearer_token(header) or ""
    if token.startswith(TOKEN_PREFIX):
        principal = await gw.authenticate(header)
        request.state.principal = principal
        principal.require(SCOPE_ADMIN)
        return AdminActor(principal.key.id)
    if not gw.admin_token:
        raise ApiError(
            403, "admin_disabled", "Admin endpoints are disabled: no admin token is set."
        )
    raise ApiError(
        401,
        "invalid_admin_token",
        "The admin token is not valid.",
        headers={"WWW-Authenticate": 'Bearer realm="fluxgate", error="invalid_token"'},
    )


Admin = Annotated[AdminActor, Depends(admin)]
