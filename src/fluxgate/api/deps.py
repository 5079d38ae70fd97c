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
from ..access.rate_limits import GUESSES, FailedAttempts
from ..errors import ApiError, unauthorized
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
    return Response(
        error.to_json(),
        status_code=error.status,
        headers=error.headers,
        media_type="application/json",
    )


# Refusals worth an audit line: not typos of a path (404/405) and not our own faults (5xx).
_AUDITED = {400, 401, 403, 409, 413, 415, 429}
# Refusals audited whatever their status: a generated image output moderation refused.
_AUDITED_CODES = {"output_rejected"}


def audit_refusal(
    error: ApiError,
    *,
    principal: Principal | None,
    prompt: str | None,
    include_prompt: bool,
    path: str,
) -> None:
    """The audit line of a refused request (the app's error handlers, the direct path)."""
    if error.status not in _AUDITED and error.code not in _AUDITED_CODES:
        return
    audit(
        "request.refused",
        key_id=principal.key.id if principal else None,
        subject=principal.subject if principal else None,
        reason=error.extra.get("reason") or error.code,
        status=error.status,
        prompt=prompt,
        include_prompt=include_prompt,
        path=path,
        categories=error.extra.get("categories"),
    )


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


async def throttled(request: Request, gw: Gateway, check: Callable[[], Awaitable[T]]) -> T:
    """Run a credential check; count it if it fails as a guess would (a credential that
    does not exist), and answer ``429 too_many_failed_attempts`` once the client is over
    the limit.

    The credential is checked *first*: one that checks out always passes, however many
    failures its address has made, since one address is often many clients (a carrier
    NAT, the servers behind a proxy). A valid request so costs the throttle nothing. Only
    failures meet the throttle: a client already shut out gets the 429 (with the time left)
    without another count; the others are counted. Guessing stays hopeless rather than
    merely slow: API keys carry 256 random bits, client tokens an HMAC and the admin
    token at least 32 characters; what the throttle bounds is what a guesser costs (limiter
    calls, audit lines) and the 429 tells it to stop.

    The client is the peer address locally and ``CF-Connecting-IP`` on Workers (the app's
    ``client_address``); requests without credentials are neither checked nor counted.
    """
    try:
        return await check()
    except ApiError as error:
        if error.code not in GUESSES or request.headers.get("authorization") is None:
            raise
        attempts: FailedAttempts = request.app.state.failed_attempts
        client: str = request.app.state.client_address(request)
        attempts.check(client, gw.clock())  # already shut out: the 429, not counted again
        blocked = await attempts.failed(gw.limiter, client, gw.clock())
        if blocked is not None:
            raise blocked from None
        raise


async def authenticated(request: Request, gw: Gateway) -> Principal:
    principal = await throttled(
        request, gw, lambda: gw.authenticate(request.headers.get("authorization"))
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
