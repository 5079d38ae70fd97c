"""Async jobs: poll a job, list jobs; fetch the secret that signs your webhooks."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...access.auth import SCOPE_GENERATE, SCOPE_READ, Principal
from ...errors import ApiError
from ...jobs.webhooks import secrets_for_key
from ...listings.catalog import JOB
from ..deps import ERRORS, Caller, Gw
from ..listing import DEFAULT_LIMIT, LISTING_ERRORS, Cursor, EndUser, Limit, listing
from ..present import presenter
from ..schemas import JobBody, JobList, WebhookSecrets

router = APIRouter(tags=["jobs"], responses=ERRORS)


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobBody,
    summary="An async generation: queued, running, succeeded (with the result) or failed",
)
async def get_job(request: Request, job_id: str, gw: Gw, principal: Caller) -> JSONResponse:
    _may_read_jobs(principal)
    if gw.jobs is None:
        raise ApiError(404, "not_found", "No such job.")
    job = await gw.jobs.get(job_id, principal)
    # The same body as the 202; ``result`` is exactly a synchronous generation's body.
    return JSONResponse(
        presenter(gw).job(job, str(request.base_url)), headers={"Cache-Control": "no-store"}
    )


@router.get(
    "/v1/webhooks/secret",
    response_model=WebhookSecrets,
    summary="The secret your webhooks are signed with (API keys only)",
)
async def webhook_secret(gw: Gw, principal: Caller) -> WebhookSecrets:
    if principal.via_token:
        raise ApiError(403, "insufficient_scope", "Client tokens cannot read webhook secrets.")
    # The new secret outlives the old key's grace: a leaked old key must not learn it.
    principal.require_current_key("the webhook secret")
    secrets = secrets_for_key(gw.signer, principal.key.id, principal.key.rotated_at)
    return WebhookSecrets(secret=secrets[0], all=secrets)


def _may_read_jobs(principal: Principal) -> None:
    """Jobs are read by whoever may submit them or read images."""
    if not ({SCOPE_GENERATE, SCOPE_READ} & principal.scopes):
        principal.require(SCOPE_READ)


@router.get(
    "/v1/jobs",
    response_model=JobList,
    responses={**ERRORS, **LISTING_ERRORS},
    summary="Your async jobs (an API key: its end users' too), newest first, paged",
)
async def list_jobs(
    request: Request,
    gw: Gw,
    principal: Caller,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    user: EndUser = None,
) -> JSONResponse:
    _may_read_jobs(principal)
    principal = principal.as_end_user(user)
    return await listing(request, gw, JOB, principal.key.id, principal.subject, limit, cursor)
