"""Listings (``GET /v1/images``, ``GET /v1/jobs``, an admin's ``GET
/v1/admin/keys/{id}/images``): one page of a key's catalog, newest first.

The catalog (:mod:`fluxgate.listings.catalog`) is per API key; a listing reads the rows of one key,
or of one of its end users. The cursor is opaque to clients and positions a caller within
its own rows only.
"""

from typing import Annotated

from fastapi import Query, Request
from fastapi.responses import JSONResponse

from ..access.auth import invalid_field
from ..access.tokens import SUBJECT_MAX_LENGTH, SUBJECT_PATTERN
from ..errors import ApiError
from ..listings.catalog import IMAGE, Catalog, Position, decode_cursor, encode_cursor
from ..service.gateway import Gateway
from .deps import error_responses
from .present import presenter

DEFAULT_LIMIT, MAX_LIMIT = 20, 100
MAX_CURSOR = 64

LISTING_ERRORS = error_responses(
    {501: "Listings are not configured here (`listing_unavailable`: no catalog)"}
)

Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page, 1-{MAX_LIMIT} (default 20).")
]
Cursor = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR, description="`next_cursor` of the previous page."),
]
EndUser = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=SUBJECT_MAX_LENGTH,
        pattern=SUBJECT_PATTERN,
        description="API keys: only this end user's (as OpenAI's `user`). A client token "
        "always lists its own end user's.",
    ),
]


def catalog_of(gw: Gateway) -> Catalog:
    if gw.catalog is None:
        raise ApiError(501, "listing_unavailable", "Listings are not configured here (no catalog).")
    return gw.catalog


def position(kind: str, cursor: str | None) -> Position | None:
    if not cursor:
        return None
    try:
        return decode_cursor(kind, cursor)
    except ValueError:
        raise invalid_field("cursor", "not a cursor this listing returned") from None


async def listing(
    request: Request,
    gw: Gateway,
    kind: str,
    account: str,
    user: str | None,
    limit: int,
    cursor: str | None,
) -> JSONResponse:
    """One page of ``account``'s rows of ``kind`` (of its end user ``user`` only, if
    given), as the API's list body."""
    after = position(kind, cursor)
    page = await catalog_of(gw).page(account, kind, user, limit, after)
    base_url = str(request.base_url)
    item = presenter(gw).image_item if kind == IMAGE else presenter(gw).job_item
    body = {
        "object": "list",
        "data": [item(entry, base_url) for entry in page.entries],
        "has_more": page.next is not None,
        "next_cursor": None if page.next is None else encode_cursor(kind, page.next),
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
