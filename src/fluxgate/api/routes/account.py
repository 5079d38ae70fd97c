"""What a caller can learn and mint about itself: usage, policy, client tokens."""

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ...access.audit import audit
from ...access.auth import SCOPE_GENERATE
from ...access.tokens import ClientToken, mint
from ...errors import ApiError
from ...listings.usage_history import MAX_KEY_DAYS, day_range
from ...model.family import DEFAULT_MODEL, MODELS, ModelSpec
from ...policy.document import EffectivePolicy
from ...service.gateway import Gateway
from ..body_route import CallerBodyRoute
from ..deps import ERRORS, Caller, Gw
from ..listing import EndUser
from ..schemas import (
    ModelCapabilities,
    ModelCard,
    ModelList,
    ModelPricing,
    TokenCreate,
    TokenCreated,
    UsageReport,
)

router = APIRouter(tags=["account"], responses=ERRORS, route_class=CallerBodyRoute)


@router.get(
    "/v1/usage",
    response_model=UsageReport,
    responses=ERRORS,
    summary="Today's spend and remaining budget, and spend per day: the key's or one end user's",
)
async def usage(
    gw: Gw,
    principal: Caller,
    first: str | None = Query(
        None, alias="from", description="First UTC day (YYYY-MM-DD); default: `to`, or today."
    ),
    last: str | None = Query(
        None,
        alias="to",
        description=f"Last UTC day, not after today; default: today. At most {MAX_KEY_DAYS} days.",
    ),
    user: EndUser = None,
) -> UsageReport:
    """A client token is one end user's, in a browser or an app: it reads that end user's
    spend and quota, never the key's (every end user's traffic) nor another end user's."""
    if principal.via_token and user not in (None, principal.subject):
        raise ApiError(
            403,
            "insufficient_scope",
            "A client token reads only its own end user's usage.",
            param="user",
        )
    whose = principal.subject if principal.via_token else user
    start, end = day_range(first, last, today=gw.controls.today(), max_days=MAX_KEY_DAYS)
    return UsageReport.model_validate(await gw.controls.usage(principal, start, end, whose))


@router.get(
    "/v1/policy",
    response_model=EffectivePolicy,
    responses=ERRORS,
    summary="The limits and rules that apply to the caller",
)
async def policy(gw: Gw, principal: Caller) -> EffectivePolicy:
    return await gw.controls.effective_policy(principal)


@router.post(
    "/v1/tokens",
    status_code=201,
    response_model=TokenCreated,
    responses=ERRORS,
    summary="Mint a short-lived client token for one end user (API keys only)",
)
async def create_token(body: TokenCreate, gw: Gw, principal: Caller) -> JSONResponse:
    if principal.via_token:
        raise ApiError(403, "insufficient_scope", "Client tokens cannot mint tokens.")
    principal.require(SCOPE_GENERATE)
    scopes: list[str] = sorted(set(body.scopes) & set(principal.scopes))
    if not scopes:
        raise ApiError(
            403, "insufficient_scope", "The key has none of the requested scopes.", param="scopes"
        )
    now = int(gw.clock())
    ttl = min(body.ttl_seconds, gw.settings.token_max_ttl_seconds)
    claims = ClientToken(
        principal.key.id,
        body.subject,
        gw.settings.token_audience,
        tuple(scopes),
        now,
        now + ttl,
        minted_by=principal.minter,
    )
    audit("token.mint", key_id=principal.key.id, subject=body.subject, ttl=ttl)
    created = TokenCreated(
        token=mint(gw.signer, claims),
        subject=body.subject,
        scopes=scopes,
        expires_at=claims.expires_at,
    )
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get(
    "/v1/models",
    response_model=ModelList,
    tags=["models"],
    summary="The FLUX.2 models served, with capabilities, price and whether your tier allows each",
)
async def list_models(gw: Gw, principal: Caller) -> ModelList:
    policy = await gw.controls.for_caller(principal)
    return ModelList(data=[_card(gw, spec, spec.id in policy.models) for spec in MODELS])


@router.get(
    "/v1/models/{model_id:path}",
    response_model=ModelCard,
    responses=ERRORS,
    tags=["models"],
    summary="One model, by any of its names",
)
async def get_model(model_id: str, gw: Gw, principal: Caller) -> ModelCard:
    spec = gw.find_model(model_id)
    if spec is None:
        raise ApiError(
            404, "model_not_found", f"The model '{model_id}' does not exist.", param="model"
        )
    policy = await gw.controls.for_caller(principal)
    return _card(gw, spec, spec.id in policy.models)


def _card(gw: Gateway, spec: ModelSpec, allowed: bool) -> ModelCard:
    """What runs for ``spec``: the model itself, or the offline placeholder that stands in
    for it (requests may still name the model; they get the placeholder's image)."""
    served = gw.served_name(spec)
    stand_in = served != spec.id
    return ModelCard(
        id=served,
        owned_by="fluxgate" if stand_in else "black-forest-labs",
        name=spec.label,
        description=spec.description,
        aliases=[name for name in spec.aliases if name != served],
        default=spec is DEFAULT_MODEL,
        allowed=allowed,
        capabilities=ModelCapabilities.model_validate(spec.capabilities()),
        pricing=ModelPricing.model_validate(spec.price.describe()),
        stands_in_for=spec.id if stand_in else None,
    )
