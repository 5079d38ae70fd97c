"""Abuse and cost controls between a request and the model, one call per stage.

- :meth:`Controls.before_cache`: the caller's policy, its tier limits and the prompt
  policy. It runs before the cache is read: a request the tier forbids is refused even when
  an image is cached, and the normalised prompt it returns is what the cache key hashes.
- :meth:`Controls.on_hit`: a cache entry made before moderation applied to the tier is
  moderated on its first hit afterwards.
- :meth:`Controls.before_model`: the rate limit, moderation and the daily budget, only on
  the way to the model, so a cache hit costs no extra store read. It returns the
  :class:`Charge` that a failure refunds. A synchronous request's charge is a *hold* with a
  lease (:mod:`fluxgate.access.ledger`): :meth:`Controls.settle` keeps it once the image is kept;
  a request that dies before either is refunded when the lease lapses.
- :meth:`Controls.before_queue`: an async submission is the model-bound request, so its
  rate limit is counted when it is submitted (and refused synchronously); the job's run
  then passes its id to ``before_model``, which moderates and reserves once per job.

The policy document is read from an in-memory cache, so ``before_cache`` costs no store
read on the hot path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from ..access.auth import Principal
from ..access.ledger import UNLIMITED, BudgetLedger, Usage, to_micro
from ..access.rate_limits import (
    USER_RULE,
    RateDecision,
    RateLimiter,
    rate_limit_headers,
    rate_limited,
)
from ..errors import ApiError
from ..listings.usage_history import day_rows, usd
from ..model.params import GenerationParams
from ..model.pricing import CostEstimate
from ..policy.document import (
    EffectivePolicy,
    Limits,
    PolicyDocument,
    describe_models,
    effective_limits,
    model_limits,
)
from ..policy.document_store import PolicyStore
from ..policy.output_moderation import OutputModerationFailure, OutputModerationMode
from ..policy.prompt_moderation import (
    ModerationMode,
    ModerationUnavailable,
    Moderator,
    category_names,
)
from ..policy.prompts import PolicyViolation, PromptPolicy

log = logging.getLogger("fluxgate.controls")


@dataclass(frozen=True)
class CallerPolicy:
    """Everything the policy document says about one principal, resolved once a request."""

    document: PolicyDocument
    tier_name: str
    limits: Limits
    prompt_policy: PromptPolicy
    models: Mapping[str, Limits]  # the models the caller may use (Workers AI id), their limits

    def describe(self, principal: Principal) -> EffectivePolicy:
        rule = self.document.rate_limits.get(self.limits.rate_limit or "")
        return EffectivePolicy(
            policy_version=self.document.version,
            tier=self.tier_name,
            limits=self.limits,
            models=describe_models(dict(self.models)),
            rate_limit=rule,
            max_prompt_length=self.prompt_policy.max_length,
            deny_rules=len(self.prompt_policy.deny_terms) + len(self.prompt_policy.deny_patterns),
            subject=principal.subject,
        )


@dataclass(frozen=True)
class Admission:
    """What :meth:`Controls.before_cache` decided for one request: who asks, under which
    policy, and the prompt as that policy normalised it (what is hashed and sent)."""

    principal: Principal
    policy: CallerPolicy
    prompt: str

    @property
    def moderation(self) -> ModerationMode:
        return self.policy.limits.moderation

    @property
    def output_moderation(self) -> OutputModerationMode:
        """``off``, ``flag`` or ``block``: what the generated image's verdict does."""
        return self.policy.limits.output_moderation

    @property
    def output_moderation_failure(self) -> OutputModerationFailure:
        """``fail_open`` or ``fail_closed``: what an output classifier outage does."""
        return self.policy.limits.output_moderation_failure


@dataclass(frozen=True)
class Charge:
    """What :meth:`Controls.before_model` cleared a model call with: the budget reserved
    (refunded if the call fails) and whether the prompt was classified safe."""

    account: str
    day: str
    micro_usd: int
    reservation: str | None = None  # a job's (held until the job ends) or a request's hold
    moderated: bool = False
    leased: bool = False  # ``reservation`` is a request's hold: settled, released or lapsed
    pace: Mapping[str, str] = field(default_factory=dict)  # RateLimit-* of the call


# How many of a key's end users its usage report names (the most spent first).
TOP_USERS = 10


def retry_hold(scope: str, idempotency_key: str) -> str:
    """The hold of a request sent with an ``Idempotency-Key``: the same for every retry, so
    a retry of a request that died takes its hold over instead of being charged again."""
    digest = hashlib.sha256(f"{scope}\n{idempotency_key}".encode()).hexdigest()
    return f"idem:{digest[:32]}"


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
        lease_seconds: float = 600,
    ) -> None:
        """``lease_seconds``: how long a synchronous request may hold its charge without
        settling it before the request is presumed dead and the charge refunded."""
        self._policies = policies
        self._limiter = limiter
        self._ledger = ledger
        self._moderator = moderator
        self._clock = clock
        self._lease = lease_seconds
        self._resolved: dict[tuple[int, str, str], CallerPolicy] = {}

    async def for_caller(self, principal: Principal) -> CallerPolicy:
        doc = await self._policies.current()
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
            doc,
            tier_name,
            limits,
            self._policies.prompt_policy(doc, tier_name, tier),
            model_limits(tier, principal.key.overrides),
        )
        if len(self._resolved) > 1024:
            self._resolved.clear()
        self._resolved[memo] = policy
        return policy

    async def before_cache(self, principal: Principal, params: GenerationParams) -> Admission:
        """The caller's policy, its tier limits and the prompt policy: everything decided
        before the cache is read. Raises when the request is refused."""
        policy = await self.for_caller(principal)
        _check_tier(policy, params)
        return Admission(principal, policy, policy.prompt_policy.apply(params.prompt))

    async def on_hit(self, admission: Admission, moderated: bool) -> None:
        """A hit on an entry made before moderation applied to the tier is moderated now."""
        if admission.moderation != "off" and not moderated:
            await self._moderate(admission)

    async def before_queue(self, admission: Admission) -> Mapping[str, str]:
        """An async submission: its rate limit is counted now (see the module docstring).
        Returns the ``RateLimit-*`` headers of the count."""
        return await self._rate_limit(admission)

    async def count_request(self, principal: Principal) -> Mapping[str, str]:
        """Count one request against the caller's rate limit, as a model-bound one is: an
        ``Idempotency-Key`` answer that was not (a cache hit, a refusal) still stores a row,
        so it is counted before it is kept. Raises ``429 rate_limited``; returns the
        ``RateLimit-*`` headers of the count."""
        policy = await self.for_caller(principal)
        return await self._rate_limit(Admission(principal, policy, ""))

    async def before_model(
        self,
        admission: Admission,
        cost: CostEstimate,
        *,
        job: str | None = None,
        hold: str | None = None,
    ) -> Charge:
        """Rate limit, moderation and budget, in that order (the cheapest refusal first).

        ``job``: the id of the async job this call runs. Its rate limit was counted at
        submission, and its reservation carries its id: a re-run after a crash finds it
        already made and is not charged again. Otherwise the charge is a hold on a lease:
        ``hold`` names it (:func:`retry_hold`), or it gets an id of its own.
        """
        pace = await self._rate_limit(admission) if job is None else {}
        moderated = await self._moderate(admission)
        if job is not None:
            charge = await self._reserve(admission, cost, reservation=job, moderated=moderated)
        else:
            held = hold or f"req:{secrets.token_hex(16)}"
            charge = await self._reserve(
                admission, cost, reservation=held, moderated=moderated, leased=True
            )
        return replace(charge, pace=pace) if pace else charge

    async def _rate_limit(self, admission: Admission) -> Mapping[str, str]:
        """Count one model-bound request against the end user's own limit (the policy's
        ``user_rate_limit``, for a request made for an end user) and then the key's.

        The end user's is counted first and exactly, in the key's ledger: one end user
        cannot take the key's whole rate, and a request it refuses costs the key's rule
        nothing. Returns the ``RateLimit-*`` headers of the tighter count (the fewer
        remaining), for the answer to tell the client how to pace itself; none without a
        rule, or for a rule no counter enforces (a Worker deployed without its binding)."""
        limits, principal = admission.policy.limits, admission.principal
        decisions: list[tuple[str, RateDecision]] = []
        user_rate = limits.user_rate_limit
        if principal.subject is not None and user_rate is not None:
            counted = await self._ledger.count(
                principal.key.id, principal.subject, user_rate.limit, user_rate.period
            )
            decision = RateDecision(
                counted.allowed,
                user_rate.limit,
                user_rate.period,
                user_rate.limit - counted.count,
                counted.reset,
            )
            if not decision.allowed:
                raise rate_limited(USER_RULE, decision, "end user")
            decisions.append((USER_RULE, decision))
        name = limits.rate_limit
        if name is not None:
            rule = admission.policy.document.rate_limits[name]
            decision = await self._limiter.hit(name, rule.limit, rule.period, principal.key.id)
            if not decision.allowed:
                raise rate_limited(name, decision)
            if decision.enforced:
                decisions.append((name, decision))
        if not decisions:
            return {}
        rule_name, tightest = min(
            reversed(decisions),
            key=lambda d: d[1].limit if d[1].remaining is None else d[1].remaining,
        )
        return rate_limit_headers(rule_name, tightest)

    async def _moderate(self, admission: Admission) -> bool:
        """True when the prompt was classified safe; raise when it was not, or per outage rule."""
        mode = admission.moderation
        if mode == "off":
            return False
        try:
            verdict = await self._moderator.classify(admission.prompt)
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

    async def _reserve(
        self,
        admission: Admission,
        cost: CostEstimate,
        *,
        reservation: str,
        moderated: bool,
        leased: bool = False,
    ) -> Charge:
        """Reserve the cost against the key's daily budget and, for a request made for an
        end user, that end user's own (the policy's ``user_daily_budget_usd``); raise
        ``budget_exceeded`` or ``user_budget_exceeded``.

        The reservation is idempotent: a job's id, or a request's hold (``leased``). An end
        user's charge is always recorded, quota or not: it is what their usage reads.
        """
        now = self._clock()
        limits, principal = admission.policy.limits, admission.principal
        budget = limits.daily_budget_usd
        user_budget = limits.user_daily_budget_usd
        charge = Charge(
            principal.key.id,
            utc_day(now),
            to_micro(cost.usd),
            reservation,
            moderated,
            leased=leased,
        )
        booked = await self._ledger.reserve(
            charge.account,
            charge.day,
            charge.micro_usd,
            _micro_limit(budget),
            reservation,
            self._lease if leased else None,
            principal.subject,
            _micro_limit(user_budget),
        )
        if booked.accepted:
            return charge
        wait = {"Retry-After": str(seconds_to_next_day(now))}
        if booked.refused_by == "user" and booked.user_usage is not None:
            raise ApiError(
                429,
                "user_budget_exceeded",
                f"This end user's daily budget of ${user_budget or 0:.4f} is spent "
                f"(${booked.user_usage.micro_usd / 1e6:.4f} used; this image costs "
                f"${cost.usd:.4f}). It resets at 00:00 UTC.",
                headers=wait,
            )
        raise ApiError(
            429,
            "budget_exceeded",
            f"This key's daily budget of ${budget or 0:.4f} is spent "
            f"(${booked.usage.micro_usd / 1e6:.4f} used; this image costs "
            f"${cost.usd:.4f}). It resets at 00:00 UTC.",
            headers=wait,
        )

    async def refund(self, charge: Charge) -> None:
        """The model call (or storing its image) failed: the client got nothing.

        A job's reservation is not refunded here: the job settles it when it ends
        (:meth:`release`), since this attempt may be retried (and reserve nothing more), or
        may have lost its lease to another attempt that succeeds. A request's hold is
        released (once: a refund that fails here happens when the lease lapses)."""
        try:
            if charge.leased and charge.reservation is not None:
                await self._ledger.release(charge.account, charge.reservation)
            elif charge.reservation is None:
                await self._ledger.refund(charge.account, charge.day, charge.micro_usd)
        except Exception as exc:  # the request already failed; do not mask its error
            log.error("budget refund failed for %s: %s", charge.account, type(exc).__name__)

    async def settle(self, charge: Charge) -> None:
        """The request's image is kept (or was made and refused): its charge stands.

        A settle that fails leaves the hold to lapse, and so to be refunded: the image is
        then free, which errs on the client's side, never on a second charge."""
        if not charge.leased or charge.reservation is None:
            return
        try:
            if not await self._ledger.settle(charge.account, charge.reservation):
                log.warning("a generation outlived its hold's lease; it was not charged")
        except Exception as exc:
            log.error("budget settle failed for %s: %s", charge.account, type(exc).__name__)

    async def release(self, account: str, reservation: str) -> None:
        """Refund a job's reservation, if one was made: the job failed, or an attempt
        failed cleanly and goes back to the queue. Idempotent."""
        try:
            await self._ledger.release(account, reservation)
        except Exception as exc:  # the job already ended; do not mask its outcome
            log.error("budget release failed for %s: %s", account, type(exc).__name__)

    async def effective_policy(self, principal: Principal) -> EffectivePolicy:
        """The limits and rules that apply to ``principal`` (``GET /v1/policy``)."""
        return (await self.for_caller(principal)).describe(principal)

    def today(self) -> date:
        """The UTC day of the gateway's clock: the budget's day."""
        return date.fromisoformat(utc_day(self._clock()))

    async def history(
        self, account: str, first: date, last: date, user: str | None = None
    ) -> list[dict[str, Any]]:
        """A key's (or one end user's of it) spend per UTC day from ``first`` to ``last``,
        zeros included."""
        stored = await self._ledger.history(account, first.isoformat(), last.isoformat(), user)
        return day_rows(first, last, stored)

    async def top_users(
        self, account: str, first: date, last: date, limit: int
    ) -> list[dict[str, Any]]:
        """The key's end users who spent most from ``first`` to ``last``, most first."""
        rows = await self._ledger.top_users(account, first.isoformat(), last.isoformat(), limit)
        return [
            {"user": row.user, "spent_usd": usd(row.micro_usd), "requests": row.requests}
            for row in rows
        ]

    async def usage(
        self,
        principal: Principal,
        first: date | None = None,
        last: date | None = None,
        user: str | None = None,
    ) -> dict[str, object]:
        """Today's spend and remaining budget, and the spend per day from ``first`` to
        ``last`` (default: today; see :mod:`fluxgate.listings.usage_history`): the key's,
        or, for ``user`` (a client token's own end user, or one the key names), that end
        user's, with their quota. A key's report also names its top end users."""
        policy = await self.for_caller(principal)
        limits, account = policy.limits, principal.key.id
        now = self._clock()
        day = utc_day(now)
        first = first or date.fromisoformat(day)
        last = last or first
        days = await self.history(account, first, last, user)
        today = next((row for row in days if row["day"] == day), None)
        if today is None:  # the range leaves today out: one more read
            spend: Usage = await self._ledger.usage(account, day, user)
            spent, requests = spend.micro_usd / 1e6, spend.requests
        else:
            spent, requests = today["spent_usd"], today["requests"]
        budget = limits.daily_budget_usd if user is None else limits.user_daily_budget_usd
        report: dict[str, object] = {
            "key_id": account,
            "user": user,
            "day": day,
            "spent_usd": round(spent, 6),
            "requests": requests,
            "daily_budget_usd": budget,
            "remaining_usd": None if budget is None else round(max(0.0, budget - spent), 6),
            "resets_at": int(now) + seconds_to_next_day(now),
            "from": first.isoformat(),
            "to": last.isoformat(),
            "days": days,
        }
        if user is None:
            report["top_users"] = await self.top_users(account, first, last, TOP_USERS)
        elif limits.user_rate_limit is not None:
            rate = limits.user_rate_limit
            used = await self._ledger.window(account, user, rate.period)
            report["rate_limit"] = {
                "limit": rate.limit,
                "period": rate.period,
                "remaining": max(0, rate.limit - used.count),
                "reset": used.reset,
            }
        return report


def _micro_limit(budget: float | None) -> int:
    return UNLIMITED if budget is None else to_micro(budget)


def _check_tier(policy: CallerPolicy, params: GenerationParams) -> None:
    """The model is one the tier allows, and the request within that model's limits."""
    spec = params.spec
    limits = policy.models.get(spec.id)
    if limits is None:
        allowed = ", ".join(describe_models(dict(policy.models))) or "none"
        raise ApiError(
            403,
            "model_not_allowed",
            f"Your tier '{policy.tier_name}' does not allow {spec.short}; it allows: {allowed}.",
            param="model",
        )
    checks = [
        ("width", params.width, limits.max_width),
        ("height", params.height, limits.max_height),
        ("input_image_0", len(params.references), limits.max_reference_images),
    ]
    if spec.settable_steps:  # a fixed schedule is the model's, not the caller's choice
        checks.insert(2, ("steps", params.steps, limits.max_steps))
    for param, value, cap in checks:
        if value > cap:
            what = "reference images" if param.startswith("input_image") else param
            raise ApiError(
                403,
                "tier_limit_exceeded",
                f"Your tier '{policy.tier_name}' allows at most {cap} {what} with "
                f"{spec.short}; the request has {value}.",
                param=param,
                reason=f"max_{'reference_images' if what == 'reference images' else param}",
            )
