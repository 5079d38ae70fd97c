"""The per-key catalog of generations and jobs: what ``GET /v1/images`` and ``GET /v1/jobs``
list, newest first, a page at a time.

KV cannot serve these listings: ``list`` is eventually consistent (a new entry can take up
to a minute to show) and returns keys in lexicographic order, not by time. The catalog is a
SQLite table instead, run like the budget ledger: in one Durable Object per API key on
Workers (a single writer, strongly consistent: a client sees its generation listed as soon
as the generation's answer arrived), in a local SQLite file otherwise. The same SQL runs
on both.

A row is one image or one job of a key (``account``), for the key itself or one of its end
users (``end_user``). Rows are ordered by ``(created, seq)`` descending: ``seq`` is the
row's insertion number, so two rows of the same second still come newest first, and the
pair is the cursor (keyset pagination: a page costs its own rows, however deep). A job's
row carries its status; it is updated as the job moves (an upsert that never goes back in
time, nor out of a final status).

Retention: a key keeps its newest :data:`KEEP_PER_KEY` rows of each kind and none older
than :data:`MAX_AGE_DAYS` (pruned as rows are added). With an image retention
(``IMAGE_RETENTION_DAYS``), image rows older than it are no longer listed (their images
are gone: R2's lifecycle rule, or the local sweep, deleted them) and the local sweep
removes them. A deleted image's row is removed with it (:meth:`CatalogTable.delete`).
Pydantic-free: the Durable Object imports it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..jobs.table import FAILED, SUCCEEDED, Job
from ..store.records import GenerationRecord

log = logging.getLogger("fluxgate.catalog")

IMAGE, JOB = "image", "job"
KINDS = (IMAGE, JOB)
KEEP_PER_KEY = 10_000  # rows of each kind per key
MAX_AGE_DAYS = 400
PRUNE_EVERY = 64  # the count cap is enforced every this many rows (it scans KEEP_PER_KEY)

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS catalog ("
    " seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, id TEXT NOT NULL,"
    " account TEXT NOT NULL, end_user TEXT, created INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, status TEXT, summary TEXT NOT NULL,"
    " UNIQUE (kind, id))"
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS catalog_by_key ON catalog (account, kind, created, seq)",
    "CREATE INDEX IF NOT EXISTS catalog_by_user ON catalog (account, kind, end_user, created, seq)",
)
PUT = (
    "INSERT INTO catalog (kind, id, account, end_user, created, updated, status, summary)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (kind, id) DO UPDATE SET"
    " status = excluded.status, updated = excluded.updated, summary = excluded.summary"
    " WHERE catalog.account = excluded.account AND catalog.updated <= excluded.updated"
    " AND COALESCE(catalog.status, '') NOT IN (?, ?)"  # a job's final statuses
    " RETURNING seq"
)
PRUNE_OLD = "DELETE FROM catalog WHERE account = ? AND kind = ? AND created < ?"
PRUNE_MANY = (
    "DELETE FROM catalog WHERE seq IN (SELECT seq FROM catalog WHERE account = ? AND kind = ?"
    " ORDER BY created DESC, seq DESC LIMIT -1 OFFSET ?)"
)
DELETE_ONE = "DELETE FROM catalog WHERE kind = ? AND id = ? AND account = ?"
EXPIRE = "DELETE FROM catalog WHERE kind = ? AND created < ?"
_COLUMNS = "seq, id, end_user, created, updated, status, summary"

Exec = Callable[[str, Sequence[Any]], list[Sequence[Any]]]


@dataclass(frozen=True)
class Entry:
    """One listed thing. ``summary``: what its listing item needs (JSON-able)."""

    kind: str
    id: str
    account: str  # the API key's id
    user: str | None  # the end user's id, or None for the key itself
    created: int
    updated: int
    status: str | None
    summary: dict[str, Any]


@dataclass(frozen=True)
class Position:
    """Where a page ends: the last row's ``(created, seq)``."""

    created: int
    seq: int


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next: Position | None  # None on the last page


def split_owner(owner: str) -> tuple[str, str | None]:
    """A record owner (a principal's scope id, ``key`` or ``key/subject``) as account and
    end user."""
    account, _, user = owner.partition("/")
    return account, user or None


def image_entry(record: GenerationRecord) -> Entry:
    account, user = split_owner(record.owner)
    summary = {
        "model": record.model,
        "width": record.width,
        "height": record.height,
        "seed": record.seed,
        "steps": record.steps,
        "content_type": record.content_type,
        "bytes": record.bytes,
        "object_key": record.object_key,
        "cache_key": record.cache_key,
        "output_moderation": record.output_moderation,
    }
    return Entry(IMAGE, record.id, account, user, record.created, record.created, None, summary)


def job_entry(job: Job) -> Entry:
    account, user = split_owner(job.owner)
    image_id = None
    if job.result is not None:
        image_id = job.result.get("record", {}).get("id")
    summary = {"image_id": image_id, "error": job.error}
    return Entry(JOB, job.id, account, user, job.created, job.updated, job.status, summary)


# -- cursors -------------------------------------------------------------------------------

_CURSOR_TEXT = re.compile(r"^[A-Za-z0-9_-]{4,64}$")
_CURSOR_BODY = re.compile(r"^(image|job)\.(0|[1-9][0-9]{0,15})\.([1-9][0-9]{0,15})$")
# The largest ``created`` or ``seq`` a cursor may carry: JavaScript's largest safe integer.
# Both cross the Durable Object RPC as JS numbers (larger ones lose precision, or fail to
# convert) and are bound as SQLite INTEGERs (at most 2**63 - 1, or the query raises
# OverflowError); a real position is far below either (a Unix time, a row count).
MAX_POSITION = 2**53 - 1


def encode_cursor(kind: str, position: Position) -> str:
    raw = f"{kind}.{position.created}.{position.seq}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> Position:
    """The position a cursor of this listing names; ``ValueError`` for anything else (a
    cursor of another listing, or one that was edited). A cursor only positions a caller
    within its own rows: editing one can reveal nothing."""
    if not _CURSOR_TEXT.match(cursor):
        raise ValueError("not a cursor")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("not a cursor") from exc
    match = _CURSOR_BODY.match(text)
    if match is None or match[1] != kind:
        raise ValueError("not a cursor of this listing")
    created, seq = int(match[2]), int(match[3])
    if created > MAX_POSITION or seq > MAX_POSITION:
        raise ValueError("not a position of this listing")
    return Position(created, seq)


# -- the table -----------------------------------------------------------------------------


def entry_from_row(
    kind: str,
    account: str,
    entry_id: Any,
    user: Any,
    created: Any,
    updated: Any,
    status: Any,
    summary: Any,
) -> Entry:
    """An :class:`Entry` from a catalog row's columns, however they arrived: from SQLite
    here, or as the strings and numbers of a Durable Object RPC, where ``""`` stands for a
    missing user or status and ``summary`` is its JSON text. One place, so that both
    runtimes read a row alike."""
    return Entry(
        str(kind),
        str(entry_id),
        str(account),
        str(user) if user else None,
        int(created),
        int(updated),
        str(status) if status else None,
        json.loads(str(summary)),
    )


def _entry(kind: str, account: str, row: Sequence[Any]) -> tuple[int, Entry]:
    seq, *columns = row
    return int(seq), entry_from_row(kind, account, *columns)


class CatalogTable:
    """The catalog's logic over any synchronous ``exec(sql, params) -> rows``."""

    def __init__(
        self,
        execute: Exec,
        *,
        keep: int = KEEP_PER_KEY,
        max_age_days: int = MAX_AGE_DAYS,
        prune_every: int = PRUNE_EVERY,
        image_retention_days: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``image_retention_days``: image rows older than this are not listed (the
        images themselves are deleted at that age); ``clock`` tells their age."""
        self._exec = execute
        self._keep = keep
        self._max_age = max_age_days * 86400
        self._prune_every = prune_every
        self._image_retention = (
            None if image_retention_days is None else image_retention_days * 86400
        )
        self._clock = clock
        self._exec(SCHEMA, ())
        for index in INDEXES:
            self._exec(index, ())

    def put(self, entry: Entry) -> bool:
        """Add a row, or move a job's row on (``False``: an older or repeated state, or a
        row of another account under the same id, which is left alone)."""
        rows = self._exec(
            PUT,
            (
                entry.kind,
                entry.id,
                entry.account,
                entry.user,
                entry.created,
                entry.updated,
                entry.status,
                json.dumps(entry.summary, separators=(",", ":")),
                SUCCEEDED,
                FAILED,
            ),
        )
        if not rows:
            return False
        self._exec(PRUNE_OLD, (entry.account, entry.kind, entry.created - self._max_age))
        if int(rows[0][0]) % self._prune_every == 0:
            self._exec(PRUNE_MANY, (entry.account, entry.kind, self._keep))
        return True

    def page(
        self, account: str, kind: str, user: str | None, limit: int, after: Position | None
    ) -> Page:
        """Up to ``limit`` rows of ``account`` (of its end user ``user`` only, if given),
        newest first, after ``after``."""
        where: list[str] = ["account = ?", "kind = ?"]
        params: list[Any] = [account, kind]
        if user is not None:
            where.append("end_user = ?")
            params.append(user)
        if after is not None:
            where.append("(created < ? OR (created = ? AND seq < ?))")
            params += [after.created, after.created, after.seq]
        if kind == IMAGE and self._image_retention is not None:
            where.append("created >= ?")
            params.append(int(self._clock()) - self._image_retention)
        # Only the fixed fragments above are joined; every value is bound.
        query = f"SELECT {_COLUMNS} FROM catalog WHERE {' AND '.join(where)}"  # noqa: S608
        rows = self._exec(query + " ORDER BY created DESC, seq DESC LIMIT ?", (*params, limit + 1))
        found = [_entry(kind, account, row) for row in rows[:limit]]
        more = len(rows) > limit and bool(found)
        return Page(
            [entry for _, entry in found],
            Position(found[-1][1].created, found[-1][0]) if more else None,
        )

    def delete(self, kind: str, entry_id: str, account: str) -> bool:
        """Remove one row of ``account`` (``False``: there was none; deleting is
        idempotent, so that a deletion retried after a failure completes)."""
        return bool(self._exec(DELETE_ONE + " RETURNING seq", (kind, entry_id, account)))

    def expire(self, kind: str, before: int) -> int:
        """Remove every account's rows of ``kind`` created before ``before`` (the local
        retention sweep); how many went."""
        return len(self._exec(EXPIRE + " RETURNING seq", (kind, before)))


class Catalog(Protocol):
    """The async port the gateway uses; one implementation per runtime."""

    async def put(self, entry: Entry) -> None: ...

    async def page(
        self, account: str, kind: str, user: str | None, limit: int, after: Position | None
    ) -> Page: ...

    async def delete(self, kind: str, entry_id: str, account: str) -> None:
        """Remove a row, waited for: a deletion's answer says whether it happened."""
        ...


class CatalogWriter:
    """The write side as the generation and job paths use it: a catalog failure never fails
    them (an image is paid for and stored, a job is accepted, by then). It is logged, and
    the listing misses that entry (or shows a job's earlier status). Without a catalog
    (a Worker deployed without the ``CATALOG`` binding) writes are skipped."""

    def __init__(self, catalog: Catalog | None) -> None:
        self._catalog = catalog

    async def remove(self, kind: str, entry_id: str, account: str) -> None:
        """Remove a row, unlike :meth:`put` raising when the catalog fails: a deletion
        that leaves its image listed must say so (and be retried)."""
        if self._catalog is not None:
            await self._catalog.delete(kind, entry_id, account)

    async def put(self, entry: Entry) -> None:
        if self._catalog is None:
            return
        try:
            await self._catalog.put(entry)
        except Exception as exc:
            log.error(
                "catalog write for %s %s failed (%s); it will be missing from listings",
                entry.kind,
                entry.id,
                type(exc).__name__,
            )
