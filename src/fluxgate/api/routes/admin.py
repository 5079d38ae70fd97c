"""Admin routes: API keys and the policy document. Every action is audited."""

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from ...access.auth import KeyRecord, expiry_in, invalid_field
from ...access.sign_in_config import SignInConfig
from ...errors import ApiError
from ...listings.catalog import IMAGE
from ...listings.usage_history import MAX_ADMIN_DAYS, day_range
from ...policy.document import PolicyDocument
from ...service.controls import TOP_USERS
from ...service.gateway import Gateway
from ..body_route import AdminBodyRoute
from ..deps import ADMIN_ERRORS, Admin, AdminActor, Gw
from ..listing import DEFAULT_LIMIT, LISTING_ERRORS, Cursor, Limit, listing
from ..schemas import (
    DayUsage,
    ImageList,
    KeyCreate,
    KeyCreated,
    KeyInfo,
    KeyList,
    KeyRotate,
    KeyUpdate,
    UserUsage,
)

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], responses=ADMIN_ERRORS, route_class=AdminBodyRoute
)

MAX_PAGE = 100
MAX_KEY_CURSOR = 4096  # KV's cursors are far shorter; anything longer is not one
# A KV cursor (the Worker's opaque token, the local store's last key) is printable ASCII:
# anything else (``%FF``) is refused as the images listing refuses a malformed cursor,
# rather than read by each store its own way (an empty page here, the first page there).
_KEY_CURSOR_TEXT = re.compile(r"[!-~]+")


class KeyPage(KeyList):
    """One page of ``GET /v1/admin/keys``: keys in id order."""

    has_more: bool = False
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last one."
    )


async def _check_tier(gw: Gateway, tier: str | None) -> None:
    (await gw.policies.current()).require_tier(tier)


def _sign_in(gw: Gateway, config: SignInConfig | None) -> dict[str, Any] | None:
    """The sign-in configuration as stored, its URLs held to the JWKS fetcher's rules
    (https to a public host; loopback only under ``ISSUER_ALLOW_LOOPBACK``) now rather than
    at the first exchange."""
    if config is None:
        return None
    try:
        config.check_urls(allow_loopback=gw.settings.issuer_allow_loopback)
    except ValueError as exc:
        raise invalid_field("sign_in", f"an issuer or JWKS URL {exc}") from None
    return config.stored()


async def create_key(gw: Gateway, body: KeyCreate, actor: AdminActor) -> tuple[str, KeyRecord]:
    """Create a key: the HTTP API and ``fluxgate keys create`` both come through here, so
    they accept and refuse the same keys, and both write the audit line."""
    await _check_tier(gw, body.tier)
    sign_in = _sign_in(gw, body.sign_in)
    expires_at = body.expires_at
    if body.expires_in_seconds is not None:
        expires_at = expiry_in(body.expires_in_seconds, gw.clock())
    token, record = await gw.keys.create(
        body.name,
        scopes=body.scopes,
        tier=body.tier,
        expires_at=expires_at,
        overrides=body.overrides.model_dump(exclude_none=True),
        sign_in=sign_in,
    )
    actor.audit("key.create", target=record.id, scopes=record.scopes, tier=record.tier)
    return token, record


async def revoke_key_as(gw: Gateway, key_id: str, actor: AdminActor) -> KeyRecord:
    record = await gw.keys.revoke(key_id)
    actor.audit("key.revoke", target=key_id)
    return record


async def rotate_key_as(
    gw: Gateway, key_id: str, grace_seconds: int, actor: AdminActor
) -> tuple[str, KeyRecord]:
    """Rotate a key: the HTTP API and ``fluxgate keys rotate`` both come through here, so
    both give the old key the same grace and both write the audit line."""
    token, record = await gw.keys.rotate(key_id, grace_seconds)
    actor.audit("key.rotate", target=key_id, grace_seconds=grace_seconds)
    return token, record


def _info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(**record.public())


@router.post(
    "/keys", status_code=201, response_model=KeyCreated, summary="Create an API key (shown once)"
)
async def post_key(body: KeyCreate, gw: Gw, actor: Admin) -> JSONResponse:
    token, record = await create_key(gw, body, actor)
    created = KeyCreated(**record.public(), key=token)
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get(
    "/keys", response_model=KeyPage, summary="List API keys, a page at a time (never the keys)"
)
async def list_keys(
    gw: Gw,
    _: Admin,
    limit: str | None = Query(None, description=f"Keys per page, 1-{MAX_PAGE} (default)."),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
) -> KeyPage:
    records, next_cursor = await _page_of_keys(gw, limit, cursor)
    return KeyPage(
        data=[_info(r) for r in records], has_more=next_cursor is not None, next_cursor=next_cursor
    )


async def _page_of_keys(
    gw: Gateway, limit: str | None, cursor: str | None
) -> tuple[list[KeyRecord], str | None]:
    """A page of keys as ``GET /v1/admin/keys`` and ``GET /v1/admin/usage`` both take it:
    one reading of ``limit`` and ``cursor``, so that both refuse the same ones with a 400
    naming the parameter (never a 422 or a 5xx from the store)."""
    size = _page_size(limit)
    if cursor is not None and (
        len(cursor) > MAX_KEY_CURSOR or not _KEY_CURSOR_TEXT.fullmatch(cursor)
    ):
        raise invalid_field("cursor", "not a cursor this listing returned")
    return await gw.keys.page(size, cursor or None)


def _page_size(limit: str | None) -> int:
    """``limit`` read here, so that a bad one is a 400 naming ``limit``."""
    if limit is None:
        return MAX_PAGE
    text = limit.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 3 and 1 <= int(text) <= MAX_PAGE):
        raise invalid_field("limit", f"must be an integer from 1 to {MAX_PAGE}")
    return int(text)


@router.get("/keys/{key_id}", response_model=KeyInfo, summary="One API key's record")
async def get_key(key_id: str, gw: Gw, _: Admin) -> KeyInfo:
    record = await gw.keys.get(key_id)
    if record is None:
        raise ApiError(404, "not_found", f"No API key with id '{key_id}'.", param="id")
    return _info(record)


@router.get(
    "/keys/{key_id}/images",
    response_model=ImageList,
    responses=LISTING_ERRORS,
    summary="A key's generations (all its end users'), newest first, paged",
)
async def key_images(
    request: Request,
    key_id: str,
    gw: Gw,
    _: Admin,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> JSONResponse:
    if await gw.keys.get(key_id) is None:
        raise ApiError(404, "not_found", f"No API key with id '{key_id}'.", param="id")
    return await listing(request, gw, IMAGE, key_id, None, limit, cursor)


@router.patch(
    "/keys/{key_id}",
    response_model=KeyInfo,
    summary="Change a key's name, scopes, tier, expiry, limit overrides or sign-in",
)
async def update_key(key_id: str, body: KeyUpdate, gw: Gw, actor: Admin) -> KeyInfo:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "tier" in changes:
        await _check_tier(gw, changes["tier"])
    if "overrides" in changes:
        changes["overrides"] = (
            body.overrides.model_dump(exclude_none=True) if body.overrides else {}
        )
    if "sign_in" in changes:
        changes["sign_in"] = _sign_in(gw, body.sign_in)
    record = await gw.keys.update(key_id, changes)
    actor.audit("key.update", target=key_id, fields=sorted(changes))
    return _info(record)


@router.post(
    "/keys/{key_id}/rotate",
    status_code=201,
    response_model=KeyCreated,
    summary="Issue a new key for the same id; the old one works for a grace period",
)
async def rotate_key(
    key_id: str, gw: Gw, actor: Admin, body: KeyRotate | None = None
) -> JSONResponse:
    grace = (body or KeyRotate()).grace_seconds
    token, record = await rotate_key_as(gw, key_id, grace, actor)
    created = KeyCreated(**record.public(), key=token)
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.post("/keys/{key_id}/revoke", response_model=KeyInfo, summary="Revoke an API key")
async def revoke_key(key_id: str, gw: Gw, actor: Admin) -> KeyInfo:
    return _info(await revoke_key_as(gw, key_id, actor))


@router.get("/policy", response_model=PolicyDocument, summary="The policy document in force")
async def get_policy(gw: Gw, _: Admin) -> PolicyDocument:
    return await gw.policies.current()


@router.put(
    "/policy",
    response_model=PolicyDocument,
    summary="Replace the policy document (its version must increase)",
)
async def put_policy(doc: PolicyDocument, gw: Gw, actor: Admin) -> PolicyDocument:
    previous = (await gw.policies.current()).version
    stored = await gw.policies.replace(doc)
    actor.audit("policy.replace", version=stored.version, previous_version=previous)
    return stored


class KeyUsage(BaseModel):
    key_id: str
    name: str
    spent_usd: float = Field(description="Spent over the range.")
    requests: int = Field(description="Model calls charged over the range.")
    days: list[DayUsage] = Field(description="One row per UTC day of the range, ascending.")
    top_users: list[UserUsage] = Field(
        description="The key's end users who spent most over the range (at most 10), most first."
    )


class UsagePage(BaseModel):
    """One page of ``GET /v1/admin/usage``: keys in id order, as ``GET /v1/admin/keys``."""

    model_config = ConfigDict(populate_by_name=True)

    first: str = Field(alias="from", description="First UTC day of the range.")
    to: str = Field(description="Last UTC day of the range.")
    data: list[KeyUsage]
    has_more: bool = False
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last one."
    )


@router.get(
    "/usage",
    response_model=UsagePage,
    summary="Spend per key and UTC day over a range, a page of keys at a time",
)
async def usage_by_key(
    gw: Gw,
    _: Admin,
    day: str | None = Query(None, description="One UTC day (YYYY-MM-DD); default: today."),
    first: str | None = Query(None, alias="from", description="First UTC day, instead of day."),
    last: str | None = Query(
        None, alias="to", description=f"Last UTC day, not after today; at most {MAX_ADMIN_DAYS}."
    ),
    limit: str | None = Query(None, description=f"Keys per page, 1-{MAX_PAGE} (default)."),
    cursor: str | None = Query(None, description="`next_cursor` of the previous page."),
) -> JSONResponse:
    """Reads one ledger per key of the page (on Workers: two Durable Object calls per key,
    its days and its top end users, made concurrently).

    The body is built of plain dicts and answered as is, as the listings are: validating
    it through ``UsagePage`` would build a model per key and per day (100 keys x 92 days
    is 9,200 ``DayUsage``), CPU that a Worker pays on every request. ``UsagePage`` stays
    the documented schema, and the contract test holds the body to it."""
    start, end = day_range(first, last, today=gw.controls.today(), max_days=MAX_ADMIN_DAYS, day=day)
    records, next_cursor = await _page_of_keys(gw, limit, cursor)
    histories, tops = await asyncio.gather(
        asyncio.gather(*(gw.controls.history(r.id, start, end) for r in records)),
        asyncio.gather(*(gw.controls.top_users(r.id, start, end, TOP_USERS) for r in records)),
    )
    data = [
        {
            "key_id": record.id,
            "name": record.name,
            "spent_usd": round(sum(row["spent_usd"] for row in days), 6),
            "requests": sum(row["requests"] for row in days),
            "days": days,
            "top_users": top,
        }
        for record, days, top in zip(records, histories, tops, strict=True)
    ]
    body = {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "data": data,
        "has_more": next_cursor is not None,
        "next_cursor": next_cursor,
    }
    return JSONResponse(body)
