"""``POST /v1/tokens/exchange``: a sign-in's ID token for a client token (no API key)."""

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse

from ...access.sign_in_config import (
    APP_CHECK_HEADER,
    GRANT_TYPE,
    ID_TOKEN_TYPES,
    ISSUED_TOKEN_TYPE,
)
from ...errors import ApiError
from ..body_route import OpenBodyRoute
from ..deps import ERRORS, Gw, throttled
from ..schemas import TokenExchange, TokenExchanged

router = APIRouter(tags=["account"], responses=ERRORS, route_class=OpenBodyRoute)
EXCHANGE = "/v1/tokens/exchange"


@router.post(
    EXCHANGE,
    response_model=TokenExchanged,
    responses=ERRORS,
    summary="Exchange a sign-in's ID token for a client token (no API key: for apps)",
)
async def exchange_token(
    request: Request,
    body: TokenExchange,
    gw: Gw,
    app_check: str | None = Header(
        None,
        alias=APP_CHECK_HEADER,
        description="A Firebase App Check token, when the key requires one.",
    ),
) -> JSONResponse:
    """The ID token is verified against the issuers the key trusts (its ``sign_in``);
    the client token answered is for the end user its configured claim names, with the
    key's sign-in scopes and lifetime. Refusals: ``403 exchange_not_enabled`` (no such key,
    or it exchanges nothing), ``401`` with the ID token's refusal code, ``401
    app_check_failed``, ``503 issuer_unavailable``. A key id that exchanges nothing and a
    forged signature count as failed attempts of the client (``429
    too_many_failed_attempts`` past 20 a minute), as a guessed API key does."""
    if body.grant_type != GRANT_TYPE:
        raise ApiError(
            400,
            "unsupported_grant_type",
            f"grant_type must be {GRANT_TYPE}.",
            param="grant_type",
        )
    if body.subject_token_type not in ID_TOKEN_TYPES:
        raise ApiError(
            400,
            "invalid_request",
            "Invalid request: subject_token_type: must be an ID token "
            "(urn:ietf:params:oauth:token-type:id_token).",
            param="subject_token_type",
        )
    exchanged = await throttled(
        request,
        gw,
        lambda: gw.sign_in.exchange(body.key_id, body.subject_token, app_check, body.scope),
        credential=None,
    )
    claims = exchanged.claims
    answer = TokenExchanged(
        token=exchanged.token,
        subject=claims.subject,
        scopes=list(claims.scopes),
        expires_at=claims.expires_at,
        access_token=exchanged.token,
        issued_token_type=ISSUED_TOKEN_TYPE,
        expires_in=claims.expires_at - claims.issued_at,
        scope=" ".join(claims.scopes),
    )
    return JSONResponse(
        answer.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"}
    )
