"""Admin routes: API keys and the policy document. Every action is audited."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .api_deps import ADMIN_ERRORS, Admin, Gw
from .auth import KeyRecord
from .errors import ApiError
from .models import KeyCreate, KeyCreated, KeyInfo, KeyList, KeyRotate, KeyUpdate
from .policy_document import PolicyDocument

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses=ADMIN_ERRORS)


async def _check_tier(gw: Gw, tier: str | None) -> None:
    if tier is not None and tier not in (await gw.controls.policies.current()).tiers:
        raise ApiError(
            400, "unknown_tier", f"No tier '{tier}' in the policy document.", param="tier"
        )


def _info(record: KeyRecord) -> KeyInfo:
    return KeyInfo(**record.public())


@router.post(
    "/keys", status_code=201, response_model=KeyCreated, summary="Create an API key (shown once)"
)
async def create_key(body: KeyCreate, gw: Gw, actor: Admin) -> JSONResponse:
    await _check_tier(gw, body.tier)
    expires_at = body.expires_at
    if body.expires_in_seconds is not None:
        expires_at = int(gw.clock()) + body.expires_in_seconds
    token, record = await gw.keys.create(
        body.name,
        scopes=body.scopes,
        tier=body.tier,
        expires_at=expires_at,
        overrides=body.overrides.model_dump(exclude_none=True),
    )
    actor.audit("key.create", target=record.id, scopes=record.scopes, tier=record.tier)
    created = KeyCreated(**record.public(), key=token)
    return JSONResponse(
        created.model_dump(), status_code=201, headers={"Cache-Control": "no-store"}
    )


@router.get("/keys", response_model=KeyList, summary="List API keys (never the keys themselves)")
async def list_keys(gw: Gw, _: Admin) -> KeyList:
    return KeyList(data=[_info(r) for r in await gw.keys.list()])


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
    record = await gw.keys.revoke(key_id)
    actor.audit("key.revoke", target=key_id)
    return _info(record)


@router.get("/policy", response_model=PolicyDocument, summary="The policy document in force")
async def get_policy(gw: Gw, _: Admin) -> PolicyDocument:
    return await gw.controls.policies.current()


@router.put(
    "/policy",
    response_model=PolicyDocument,
    summary="Replace the policy document (its version must increase)",
)
async def put_policy(doc: PolicyDocument, gw: Gw, actor: Admin) -> PolicyDocument:
    previous = (await gw.controls.policies.current()).version
    stored = await gw.controls.policies.replace(doc)
    actor.audit("policy.replace", version=stored.version, previous_version=previous)
    return stored
