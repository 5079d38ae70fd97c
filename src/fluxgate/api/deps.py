"""Dependencies shared by the API routers: the gateway, the caller, the admin check.

The gateway is found through the app's ``resolve(request)``: the local runtime passes a
fixed one; the Worker builds one per isolate from ``env`` on first use.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..access.audit import audit
from ..access.auth import SCOPE_ADMIN, TOKEN_PREFIX, Principal, bearer_token, check_admin
from ..access.rate_limits import FailedAttempts
from ..access.sign_in_config import APP_CHECK_HEADER
from ..errors import ApiError, rendered, unauthorized
from ..service.gateway import Gateway
from .schemas import ErrorBody

T = TypeVar("T")

# How the app finds its gateway (fixed locally; built from ``env`` on Workers) and who a
# request comes from (the peer locally, ``CF-Connecting-IP`` on Workers).
Resolver = Callable[[Request], Gateway | Awaitable[Gateway]]
ClientAddress = Callable[[Request], str]

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
        503: "Model out of capacity, prompt or output moderation, or storage unavailable",
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


def error_response(error: ApiError) -> Response:
    """``error`` as a Starlette response: its one rendering (:func:`rendered`)."""
    answer = rendered(error)
    return Response(answer.body, status_code=answer.status, headers=answer.headers)


async def resolved(resolve: Resolver, request: Request) -> Gateway:
    """The gateway for ``request`` (the local runtime's is fixed; the Worker's is built
    from ``env`` on first use). Raises ``server_misconfigured`` when it cannot be."""
    found = resolve(request)
    gw: Gateway = await found if hasattr(found, "__await__") else found
    return gw


async def gateway(request: Request) -> Gateway:
    gw = await resolved(request.app.state.resolve, request)
    request.state.gateway = gw  # the error handlers read settings from it
    return gw


Gw = Annotated[Gateway, Depends(gateway)]


async def throttled(
    request: Request,
    gw: Gateway,
    check: Callable[[], Awaitable[T]],
    *,
    credential: str | None = "authorization",
) -> T:
    """Run a credential check behind the failed-authentication throttle
    (:meth:`FailedAttempts.refusal`); the client is the app's ``client_address``.
    ``credential``: the header that carries it (a request without it is not a guess);
    ``None`` when the body does (the sign-in exchange's ID token)."""
    try:
        return await check()
    except ApiError as error:
        if credential is not None and request.headers.get(credential) is None:
            raise
        attempts: FailedAttempts = request.app.state.failed_attempts
        client = str(request.app.state.client_address(request))
        raise await attempts.refusal(
            error, client=client, limiter=gw.limiter, clock=gw.clock
        ) from None


async def authenticated(request: Request, gw: Gateway) -> Principal:
    headers = request.headers
    principal = await throttled(
        request,
        gw,
        lambda: gw.authenticate(headers.get("authorization"), headers.get(APP_CHECK_HEADER)),
    )
    request.state.principal = principal
    return principal


async def caller(
    request: Request,
    gw: Gw,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    checked: Principal | None = getattr(request.state, "checked_caller", None)
    return checked if checked is not None else await authenticated(request, gw)


async def caller_checked(request: Request) -> None:
    """``caller``, run by a body route before it reads the body (``api/body_route.py``);
    the dependency then reuses the result, so the credential is checked and counted once."""
    request.state.checked_caller = await authenticated(request, await gateway(request))


Caller = Annotated[Principal, Depends(caller)]


class AdminActor:
    """Who performed an admin action, for the audit log: the admin token, a key id, or the
    local CLI (``actor``: ``admin_token``, ``key``, ``cli``)."""

    def __init__(self, key_id: str | None, actor: str | None = None) -> None:
        self.key_id = key_id
        self.actor = actor or ("admin_token" if key_id is None else "key")

    def audit(self, action: str, **details: Any) -> None:
        audit(action, key_id=self.key_id, actor=self.actor, **details)


async def admin(
    request: Request,
    gw: Gw,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(admin_scheme)],
) -> AdminActor:
    checked: AdminActor | None = getattr(request.state, "checked_admin", None)
    if checked is not None:
        return checked
    return await throttled(request, gw, lambda: _admin_actor(request, gw))


async def admin_checked(request: Request) -> None:
    """``admin``, run by a body route before it reads the body (``api/body_route.py``)."""
    gw = await gateway(request)
    request.state.checked_admin = await throttled(request, gw, lambda: _admin_actor(request, gw))


async def _admin_actor(request: Request, gw: Gateway) -> AdminActor:
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
    raise unauthorized("invalid_admin_token", "The admin token is not valid.", invalid_token=True)


Admin = Annotated[AdminActor, Depends(admin)]
