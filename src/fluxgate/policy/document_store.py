"""Where the policy document lives: KV (``policy:current``), read through a short cache.

Both runtimes keep it in their KV role. Each process (or Workers isolate) re-reads it at
most every ``POLICY_CACHE_SECONDS``, so the hot path costs no KV read for policy; a change
reaches every isolate within that time plus KV's own propagation (up to about a minute).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import ValidationError

from ..errors import ApiError
from ..store import keyspace
from ..store.ports import KVStore
from .document import PolicyDocument, Tier
from .prompts import PromptPolicy

POLICY_KEY = keyspace.POLICY


class PolicyStore:
    def __init__(
        self,
        kv: KVStore,
        default: PolicyDocument,
        *,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kv = kv
        self._default = default
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._current: PolicyDocument | None = None
        self._loaded_at = float("-inf")
        self._compiled_for: PolicyDocument | None = None
        self._prompt_policies: dict[str, PromptPolicy] = {}

    async def current(self) -> PolicyDocument:
        if self._current is not None and self._clock() - self._loaded_at < self._cache_seconds:
            return self._current
        raw = await self._kv.get(POLICY_KEY)
        doc = self._default
        if raw is not None:
            try:
                doc = PolicyDocument.model_validate_json(raw)
            except ValidationError:
                # Only validated documents are ever written; keep serving the last good one.
                doc = self._current or self._default
        self._current, self._loaded_at = doc, self._clock()
        return doc

    async def replace(self, doc: PolicyDocument) -> PolicyDocument:
        current = await self.current()
        if doc.version <= current.version:
            raise ApiError(
                409,
                "policy_version_conflict",
                f"The new policy must have a version above {current.version}.",
                param="version",
            )
        await self._kv.put(POLICY_KEY, doc.model_dump_json())
        self._current, self._loaded_at = doc, self._clock()
        return doc

    def prompt_policy(self, doc: PolicyDocument, tier_name: str, tier: Tier) -> PromptPolicy:
        """Compiled deny rules, once per loaded document and tier.

        Keyed by the document object, not its version: a version number is not an identity
        (a document deleted from KV and written again restarts at 1), and a warm isolate
        must never apply the rules of a document that is no longer stored.
        """
        if doc is not self._compiled_for:
            self._compiled_for, self._prompt_policies = doc, {}
        policy = self._prompt_policies.get(tier_name)
        if policy is None:
            policy = self._prompt_policies[tier_name] = doc.prompt_policy(tier)
        return policy
