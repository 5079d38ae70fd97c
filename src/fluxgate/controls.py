"""Abuse and cost controls between a request and the model: tier limits, rate limits,
moderation and the daily budget.

Order matters for cost. The policy document is read from an in-memory cache and tier
limits are checked before the cache lookup (a request the tier forbids is refused even
when an image is cached). Rate limiting, moderation and the budget run only on the way to
the model, so a cache hit costs no extra store read. A cache entry made before moderation
applied to the tier is moderated on its first hit afterwards.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .auth import Principal
from .errors import ApiError
from .ledger import UNLIMITED, BudgetLedger, Usage, to_micro
from .model import ReferenceImage
from .models import GenerationRequest
from .moderation import ModerationUnavailable, Moderator, category_names
from .policy import PolicyViolation, PromptPolicy
from .policy_document import EffectivePolicy, Limits, PolicyDocument, effective_limits
from .policy_store import PolicyStore
from .pricing import CostEstimate
from .ratelimit import RateLimiter, rate_limited

log = logging.getLogger("fluxgate.controls")


@dataclass(frozen=True)
class CallerPolicy:
    """Everything the policy document says about one principal, resolved once a request."""

    document: PolicyDocument
    tier_name: str
    limits: Limits
    prompt_policy: PromptPolicy

    def describe(self, principal: Principal) -> EffectivePolicy:
        rule = self.document.rate_limits.get(self.limits.rate_limit or "")
        return EffectivePolicy(
            policy_version=self.document.version,
            tier=self.tier_name,
            limits=self.limits,
            rate_limit=rule,
            max_prompt_length=self.prompt_policy.max_length,
            deny_rules=len(self.prompt_policy.deny_terms) + len(self.prompt_policy.deny_patterns),
            subject=principal.subject,
        )


@dataclass(frozen=True)
class Charge:
    account: str
    day: str
    micro_usd: int
    reservation: str | None = None  # a job's: held until the job ends (see ``release``)


def utc_day(now: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now))


def seconds_to_next_day(now: float) -> int:
    return 86400 - int(now) % 86400


class Controls:
    def __init__(
        self,
        *,
        policies: PolicyStore,
        limiter: RateLimiter,
        ledger: BudgetLedger,
        moderator: Moderator,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.policies = policies
        self.limiter = limiter
        self.ledger = ledger
        self.moderator = moderator
        self.clock = clock
        self._resolved: dict[tuple[int, str, str], CallerPolicy] = {}

    async def for_caller(self, principal: Principal) -> CallerPolicy:
        doc = await self.policies.current()
        tier_name, tier = doc.tier(principal.key.tier)
        # Resolved once per (policy version, tier, overrides): it is on every request's path.
        memo = (doc.version, tier_name, json.dumps(principal.key.overrides, sort_keys=True))
        found = self._resolved.get(memo)
        if found is not None and found.document is doc:
            return found
        limits = effective_limits(tier, principal.key.overrides)
        if limits.rate_limit is not None and limits.rate_limit not in doc.rate_limits:
            limits = limits.model_copy(update={"rate_limit": tier.rate_limit})
        policy = CallerPolicy(
            doc, tier_name, limits, self.policies.prompt_policy(doc, tier_name, tier)
        )
        if len(self._resolved) > 1024:
            self._resolved.clear()
        self._resolved[memo] = policy
        return policy

    @staticmethod
    def check_request(
        policy: CallerPolicy, request: GenerationRequest, references: tuple[ReferenceImage, ...]
    ) -> None:
        limits = policy.limits
        for param, value, cap in (
            ("width", request.width, limits.max_width),
            ("height", request.height, limits.max_height),
            ("steps", request.steps, limits.max_steps),
            ("input_image_0", len(references), limits.max_reference_images),
        ):
            if value > cap:
                what = "reference images" if param.startswith("input_image") else param
                raise ApiError(
                    403,
                    "tier_limit_exceeded",
                    f"Your tier '{policy.tier_name}' allows at most {cap} {what}; "
                    f"the request has {value}.",
                    param=param,
                    reason=f"max_{'reference_images' if what == 'reference images' else param}",
                )

    async def admit(self, policy: CallerPolicy, principal: Principal) -> None:
        """Count one model-bound request per key and, for client tokens, per end user."""
        name = policy.limits.rate_limit
        if name is None:
            return
        rule = policy.document.rate_limits[name]
        keys = [("key", principal.key.id)]
        if principal.subject is not None:
            keys.append(("end user", principal.scope_id))
        for who, key in keys:
            decision = await self.limiter.hit(name, rule.limit, rule.period, key)
            if not decision.allowed:
                raise rate_limited(name, decision, who)

    async def moderate(self, policy: CallerPolicy, prompt: str) -> bool:
        """True when the prompt was classified safe; raise when it was not, or per outage rule."""
        mode = policy.limits.moderation
        if mode == "off":
            return False
        try:
            verdict = await self.moderator.classify(prompt)
        except ModerationUnavailable as exc:
            if mode == "fail_open":
                log.warning("moderation unavailable; failing open: %s", exc)
                return False
            raise ApiError(
                503,
                "moderation_unavailable",
                "Prompt moderation is unavailable and this tier requires it. Retry later.",
                headers={"Retry-After": "10"},
            ) from exc
        if not verdict.safe:
            names = category_names(verdict.categories)
            error = PolicyViolation("moderation", "The prompt was refused by content moderation.")
            error.extra["categories"] = names
            error.extra["category"] = names[0] if names else None
            raise error
        return True

    async def reserve(
        self,
        policy: CallerPolicy,
        principal: Principal,
        cost: CostEstimate,
        *,
        reservation: str | None = None,
    ) -> Charge:
        """Reserve the cost against the key's daily budget, or raise ``budget_exceeded``.

        With a ``reservation`` id (a job's) the reservation is idempotent: a job re-run
        after a crash finds its reservation already made and is not charged again.
        """
        now = self.clock()
        budget = policy.limits.daily_budget_usd
        limit = UNLIMITED if budget is None else to_micro(budget)
        charge = Charge(principal.key.id, utc_day(now), to_micro(cost.usd), reservation)
        booked = await self.ledger.reserve(
            charge.account, charge.day, charge.micro_usd, limit, reservation
        )
        if not booked.accepted:
            wait = seconds_to_next_day(now)
            raise ApiError(
                429,
                "budget_exceeded",
                f"This key's daily budget of ${budget:.4f} is spent "
                f"(${booked.usage.micro_usd / 1e6:.4f} used; this image costs "
                f"${cost.usd:.4f}). It resets at 00:00 UTC.",
                headers={"Retry-After": str(wait)},
            )
        return charge

    async def refund(self, charge: Charge) -> None:
        try:
            await self.ledger.refund(charge.account, charge.day, charge.micro_usd)
        except Exception as exc:  # the request already failed; do not mask its error
            log.error("budget refund failed for %s: %s", charge.account, type(exc).__name__)

    async def release(self, account: str, reservation: str) -> None:
        """Refund a job's reservation, if one was made: the job failed, or an attempt
        failed cleanly and goes back to the queue. Idempotent."""
        try:
            await self.ledger.release(account, reservation)
        except Exception as exc:  # the job already ended; do not mask its outcome
            log.error("budget release failed for %s: %s", account, type(exc).__name__)

    async def usage(self, policy: CallerPolicy, principal: Principal) -> dict[str, object]:
        now = self.clock()
        day = utc_day(now)
        usage: Usage = await self.ledger.usage(principal.key.id, day)
        budget = policy.limits.daily_budget_usd
        spent = usage.micro_usd / 1e6
        return {
            "key_id": principal.key.id,
            "day": day,
            "spent_usd": round(spent, 6),
            "requests": usage.requests,
            "daily_budget_usd": budget,
            "remaining_usd": None if budget is None else round(max(0.0, budget - spent), 6),
            "resets_at": int(now) + seconds_to_next_day(now),
        }
