"""Idempotency keys on Workers: one Durable Object per API key, SQLite inside.

KV cannot hold a claim: two isolates reading "absent" at once would both start the
generation. Every claim for a key goes to the same object, a single writer, which runs
:class:`~fluxgate.store.answers.IdempotencyTable` on its own SQLite storage (a call's
statements run in one synchronous turn: nothing interleaves). ``IdempotencyObject`` is the
object (exported by the Worker entry); ``WorkersIdempotency`` is the client the service
uses. Only strings and numbers cross the RPC boundary (headers as JSON text, "" for no
image key).
"""

from __future__ import annotations

from typing import Any

from workers import DurableObject

from ...store.answers import (
    Caps,
    Claim,
    IdempotencyTable,
    StoredResponse,
    claim_fields,
    claim_from_fields,
    headers_text,
    response_from_row,
)
from ..ffi import py_value, sql_executor, unwrap


class IdempotencyObject(DurableObject):
    """The Durable Object: RPC methods over
    :class:`~fluxgate.store.answers.IdempotencyTable`."""

    def __init__(self, ctx: Any, env: Any) -> None:
        super().__init__(ctx, env)
        self._table = IdempotencyTable(sql_executor(self.ctx.storage))

    async def claim(
        self,
        account: str,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        max_rows: int,
        max_bytes: int,
        lease_seconds: float,
    ) -> list[Any]:
        """``[state, retry_after, status, body, headers, image_key]`` (see
        :func:`~fluxgate.store.answers.claim_fields`)."""
        claim = self._table.claim(
            str(scope),
            str(key),
            str(fingerprint),
            str(token),
            float(now),
            account=str(account),
            caps=Caps(int(max_rows), int(max_bytes), float(lease_seconds)),
        )
        return claim_fields(claim)

    async def complete(
        self,
        scope: str,
        key: str,
        token: str,
        status: int,
        body: str,
        headers: str,
        image_key: str,
        now: float,
    ) -> bool:
        response = response_from_row(status, body, headers, image_key)
        return self._table.complete(str(scope), str(key), str(token), response, float(now))

    async def release(self, scope: str, key: str, token: str) -> None:
        self._table.release(str(scope), str(key), str(token))


class WorkersIdempotency:
    """The service's :class:`~fluxgate.store.answers.IdempotencyStore`, calling one
    object per key."""

    def __init__(self, namespace: Any) -> None:
        self._namespace = unwrap(namespace)

    def _stub(self, account: str) -> Any:
        return self._namespace.get(self._namespace.idFromName(account))

    async def claim(
        self,
        account: str,
        scope: str,
        key: str,
        fingerprint: str,
        token: str,
        now: float,
        caps: Caps,
    ) -> Claim:
        stub = self._stub(account)
        claimed = await stub.claim(
            account, scope, key, fingerprint, token, now, caps.rows, caps.bytes, caps.lease_seconds
        )
        return claim_from_fields(py_value(claimed))

    async def complete(
        self,
        account: str,
        scope: str,
        key: str,
        token: str,
        response: StoredResponse,
        now: float,
    ) -> bool:
        stored = await self._stub(account).complete(
            scope,
            key,
            token,
            response.status,
            response.body,
            headers_text(response.headers),
            response.image_key or "",
            now,
        )
        return bool(py_value(stored))

    async def release(self, account: str, scope: str, key: str, token: str) -> None:
        await self._stub(account).release(scope, key, token)


def idempotency_from_env(env: Any) -> WorkersIdempotency | None:
    """Idempotency keys when the IDEMPOTENCY objects are bound (else ``None``)."""
    namespace = getattr(env, "IDEMPOTENCY", None)
    return None if namespace is None else WorkersIdempotency(namespace)
