"""Admin routes: API keys and the policy document. Every action is audited."""

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import Field

from ..auth import KeyRecord, expiry_in, invalid_field
from ..errors import ApiError
from ..gateway import Gateway
from ..policy_document import PolicyDocument
from .deps import ADMIN_ERRORS, Admin, AdminActor, Gw
from .request_body import JsonBodyRoute
from .schemas import KeyCreate, KeyCreated, KeyInfo, KeyList, KeyRotate, KeyUpdate

router = APIRouter(
    prefix="/v1/admin", tags=["admin"], responses=ADMIN_ERRORS, route_class=JsonBodyRoute
)

MAX_PAGE = 100


class KeyPage(KeyList):
    """One page of ``GET /v1/admin/keys``: keys in id order."""

    has_more: bool = False
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; null on the last one."
    )


async def _check_tier(gw: Gateway, tier: str | None) -> None:
    (await gw.policies.current()).require_tier(tier)


async def create_key(gw: Gateway, body: KeyCreate, actor: AdminActor) -> tuple[str, KeyRecord]:
    """Create a key: the HTTP API and ``fluxgate keys create`` both come through here, so
    they accept and refuse the same keys, and both write the audit line."""
    await _check_tier(gw, body.tier)
    expires_at = body.expires_at
    if body.expires_in_seconds is not None:
        expires_at = expiry_in(body.expires_in_seconds, gw.clock())
    token, record = await gw.keys.create(
        body.name,
        scopes=body.scopes,
        tier=body.tier,
        expires_at=expires_at,
        overrides=body.overrides.model_dump(exclude_none=True),
    )
    actor.audit("key.create", target=record.id, scopes=record.scopes, tier=record.tier)
    return token, record


async def revoke_key_as(gw: Gateway, key_id: str, actor: AdminActor) -> KeyRecord:
    record = await gw.keys.revoke(key_id)
    actor.audit("key.revoke", target=key_id)
    return record


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
    size = _page_size(limit)
    if cursor is not None and len(cursor) > 4096:
        raise invalid_field("cursor", "not a cursor this listing returned")
    records, next_cursor = await gw.keys.page(size, cursor or None)
    return KeyPage(
        data=[_info(r) for r in records], has_more=next_cursor is not None, next_cursor=next_cursor
    )


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


@router.patch(
    "/keys/{key_id}",
    response_model=KeyInfo,
    summary="Change a key's name, scopes, tier, expiry or limit overrides",
)
async def update_key(key_id: str, body: KeyUpdate, gw: Gw, actor: Admin) -> KeyInfo:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    if "tier" in changes:
        await _check_tier(gw, changes["tier"])
    if "overrides" in changes:
        changes["overrides"] = (
            body.overrides.model_dump(exclude_none=True) if body.overrides else {}
        )
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
    token, record = await gw.keys.rotate(key_id, grace)
    actor.audit("key.rotate", target=key_id, grace_seconds=grace)
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
