"""The policy document: versioned data that says what each tier of key may do.

Stored as JSON (KV ``policy:current`` on Workers, a file locally) and validated here. A key
names a tier; its per-key ``overrides`` replace single limits. Deny rules are global plus
per tier. Rate limits are named (``standard``, ``burst``...): on Workers each name is a Rate
Limiting binding ``RATE_LIMIT_<NAME>`` whose limit and period must match the document.

Models. A tier's ``models`` names the models of the family it may use, each with limits
that replace the tier's for that model (``{"flux-2-klein-4b": {}, "flux-2-dev":
{"max_width": 1024}}``); absent, the tier may use every model with its own limits. The
limits of one request are the tier's, replaced by the key's overrides, replaced by the
model's own in the tier: the most specific rule wins, so a tier that renders dev at most
512 px wide does so for every key of the tier.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ..access.rate_limits import AUTH_FAILURES_RULE
from ..errors import ApiError
from ..model.family import (
    MAX_REFERENCE_IMAGES,
    MAX_SIZE,
    MAX_STEPS,
    MIN_SIZE,
    MODELS,
    ModelSpec,
    find_model,
)
from .output_moderation import OutputModerationFailure, OutputModerationMode
from .prompt_moderation import ModerationMode
from .prompts import PromptPolicy

log = logging.getLogger("fluxgate.policy")

_NAME = r"^[a-z][a-z0-9_]{0,31}$"

# The ledger counts integer micro-dollars in SQLite's signed 64-bit integers (its
# "unlimited" is 2**62 micro-dollars): a budget must convert to one with room to spare. A
# million dollars a day is far beyond any real budget and far within that range.
MAX_DAILY_BUDGET_USD = 1_000_000.0
# A version travels as a JSON number to every client: keep it exact in a double.
MAX_VERSION = 2**53 - 1
# Deny rules are matched against every prompt: their number and length bound that work.
MAX_DENY_RULES = 1000
MAX_DENY_RULE_LENGTH = 500
MAX_NAMED_ENTRIES = 64  # tiers, rate-limit rules

Budget = Annotated[float, Field(ge=0, le=MAX_DAILY_BUDGET_USD, allow_inf_nan=False)]
RuleName = Annotated[str, Field(pattern=_NAME)]
DenyRules = Annotated[
    tuple[Annotated[str, Field(max_length=MAX_DENY_RULE_LENGTH)], ...],
    Field(max_length=MAX_DENY_RULES),
]


class RateLimitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    limit: int = Field(ge=1, le=1_000_000, description="Requests allowed per period.")
    period: Literal[10, 60] = Field(60, description="Window in seconds (Cloudflare: 10 or 60).")


class UserRate(BaseModel):
    """A rate limit per end user: at most ``limit`` model-bound requests in each fixed
    window of ``period`` seconds (windows start at multiples of the period since the Unix
    epoch). Counted exactly, in the key's ledger (``access/ledger.py``), so any period works,
    not only the Rate Limiting binding's 10 and 60 s."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    limit: int = Field(ge=1, le=1_000_000, description="Model-bound requests per window.")
    period: int = Field(ge=1, le=86_400, description="Window in seconds (1 s to a day).")


class Limits(BaseModel):
    """Limits of a tier; every field may also be overridden per key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate_limit: RuleName | None = Field(
        "standard", description="Name of a rate-limit rule; null: none."
    )
    daily_budget_usd: Budget | None = Field(10.0, description="null: unlimited.")
    user_rate_limit: UserRate | None = Field(
        None,
        description="Each end user's own rate limit (client tokens, OpenAI's `user`), "
        "within the key's: null, none beyond the key's.",
    )
    user_daily_budget_usd: Budget | None = Field(
        None,
        description="Each end user's own daily budget (USD, UTC days), within the key's: "
        "null, none beyond the key's.",
    )
    max_width: int = Field(MAX_SIZE, ge=MIN_SIZE, le=MAX_SIZE)
    max_height: int = Field(MAX_SIZE, ge=MIN_SIZE, le=MAX_SIZE)
    max_steps: int = Field(50, ge=1, le=50)
    max_reference_images: int = Field(MAX_REFERENCE_IMAGES, ge=0, le=MAX_REFERENCE_IMAGES)
    moderation: ModerationMode = "off"
    output_moderation: OutputModerationMode = Field(
        "off",
        description="The generated image is classified: off; flag (kept, the verdict "
        "recorded); block (an unsafe image is refused with 422 output_rejected, never kept).",
    )
    output_moderation_failure: OutputModerationFailure = Field(
        "fail_closed",
        description="A classifier outage: fail_closed refuses (503 "
        "output_moderation_unavailable, not charged); fail_open keeps the image unchecked.",
    )


class LimitOverrides(BaseModel):
    """Per-key replacements for single limits (what an admin may set on a key).

    ``null`` (or absent) means "as the tier says"; the rate limit must name a rule of the
    policy document in force when the key is used (an unknown name falls back to the tier's).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate_limit: RuleName | None = None
    daily_budget_usd: Budget | None = None
    user_rate_limit: UserRate | None = None
    user_daily_budget_usd: Budget | None = None
    max_width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_steps: int | None = Field(None, ge=1, le=50)
    max_reference_images: int | None = Field(None, ge=0, le=MAX_REFERENCE_IMAGES)
    moderation: ModerationMode | None = None
    output_moderation: OutputModerationMode | None = None
    output_moderation_failure: OutputModerationFailure | None = None


class ModelLimits(BaseModel):
    """Limits of one model in a tier: each replaces the tier's (``null``: the tier's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_steps: int | None = Field(None, ge=1, le=MAX_STEPS, description="flux-2-dev only.")
    max_reference_images: int | None = Field(None, ge=0, le=MAX_REFERENCE_IMAGES)


_MODEL_LIMITS = tuple(ModelLimits.model_fields)


class Tier(Limits):
    deny_terms: DenyRules = ()
    deny_patterns: DenyRules = ()
    models: dict[str, ModelLimits] | None = Field(
        None,
        min_length=1,
        max_length=len(MODELS),
        description="The models this tier may use (short name or Workers AI id), each with "
        "limits replacing the tier's. null: every model, with the tier's limits.",
    )

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: dict[str, ModelLimits] | None) -> dict[str, ModelLimits] | None:
        """Names resolve to the family's short names, each at most once."""
        if value is None:
            return None
        named: dict[str, ModelLimits] = {}
        for name, limits in value.items():
            spec = find_model(name)
            if spec is None:
                known = ", ".join(model.short for model in MODELS)
                raise ValueError(f"unknown model {name!r} (the models are {known})")
            if spec.short in named:
                raise ValueError(f"model {spec.short!r} is named twice")
            named[spec.short] = limits
        return named

    @model_validator(mode="after")
    def _steps_only_where_settable(self) -> Tier:
        for name, limits in (self.models or {}).items():
            spec = find_model(name)
            if spec is not None and limits.max_steps is not None and not spec.settable_steps:
                raise ValueError(
                    f"model {name!r} runs a fixed {spec.default_steps}-step schedule: "
                    "max_steps does not apply to it"
                )
        return self

    def allows(self) -> tuple[ModelSpec, ...]:
        """The models this tier may use, in the family's order."""
        if self.models is None:
            return MODELS
        return tuple(spec for spec in MODELS if spec.short in self.models)


def compile_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return patterns


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=MAX_VERSION, description="Must increase with every change.")
    default_tier: RuleName = "standard"
    max_prompt_length: int = Field(2048, ge=1, le=100_000)
    deny_terms: DenyRules = ()
    deny_patterns: DenyRules = ()
    rate_limits: dict[RuleName, RateLimitRule] = Field(
        default_factory=lambda: {"standard": RateLimitRule(limit=60, period=60)},
        max_length=MAX_NAMED_ENTRIES,
    )
    tiers: dict[RuleName, Tier] = Field(
        default_factory=lambda: {"standard": Tier()}, min_length=1, max_length=MAX_NAMED_ENTRIES
    )

    @field_validator("deny_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return compile_patterns(value)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDocument:
        if AUTH_FAILURES_RULE in self.rate_limits:
            raise ValueError(f"the rate-limit name {AUTH_FAILURES_RULE!r} is reserved")
        if self.default_tier not in self.tiers:
            raise ValueError(f"default_tier {self.default_tier!r} is not a tier")
        for tier_name, tier in self.tiers.items():
            compile_patterns(tier.deny_patterns)
            if tier.rate_limit is not None and tier.rate_limit not in self.rate_limits:
                raise ValueError(f"tier {tier_name!r} uses unknown rate limit {tier.rate_limit!r}")
        return self

    def tier(self, name: str | None) -> tuple[str, Tier]:
        """The named tier; a key whose tier was removed falls back to the default tier."""
        chosen = name if name in self.tiers else self.default_tier
        return chosen, self.tiers[chosen]

    def require_tier(self, name: str | None) -> None:
        """Refuse a tier this document does not have: the one check for the admin API and
        the CLI, so neither can give a key a tier the other would refuse."""
        if name is not None and name not in self.tiers:
            raise ApiError(
                400, "unknown_tier", f"No tier '{name}' in the policy document.", param="tier"
            )

    def prompt_policy(self, tier: Tier) -> PromptPolicy:
        return PromptPolicy.build(
            self.max_prompt_length,
            [*self.deny_terms, *tier.deny_terms],
            [*self.deny_patterns, *tier.deny_patterns],
        )


class EffectivePolicy(BaseModel):
    """What applies to one caller: ``GET /v1/policy``."""

    policy_version: int
    tier: str
    limits: Limits
    models: dict[str, ModelLimits] = Field(
        description="The models the caller may use (short names), each with its limits; "
        "max_steps is null for a model whose schedule is fixed."
    )
    rate_limit: RateLimitRule | None
    max_prompt_length: int
    deny_rules: int = Field(description="How many deny terms and patterns apply (not which).")
    subject: str | None = None


def effective_limits(tier: Tier, overrides: dict[str, Any]) -> Limits:
    """The tier's limits with the key's overrides applied.

    Overrides are validated when an admin sets them, but a key stored under older, looser
    rules (a ``daily_budget_usd`` of 1e308, say) must not fail every request it makes: an
    override the current rules refuse is ignored, and the tier's value applies.
    """
    return Limits.model_validate({**_tier_limits(tier), **_clean_overrides(overrides)})


def model_limits(tier: Tier, overrides: dict[str, Any]) -> dict[str, Limits]:
    """The limits of each model the tier allows (by Workers AI id): the tier's, then the
    key's overrides, then the model's own in the tier (see the module docstring)."""
    base, clean = _tier_limits(tier), _clean_overrides(overrides)
    out: dict[str, Limits] = {}
    for spec in tier.allows():
        own = (tier.models or {}).get(spec.short) or ModelLimits()
        per_model = own.model_dump(exclude_none=True)
        out[spec.id] = Limits.model_validate({**base, **clean, **per_model})
    return out


def _tier_limits(tier: Tier) -> dict[str, Any]:
    return tier.model_dump(include=set(Limits.model_fields))


def _clean_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name, value in overrides.items():
        try:
            checked = LimitOverrides.model_validate({name: value})
        except ValidationError:
            log.warning("ignoring the stored override %s: it breaks the current rules", name)
            continue
        clean.update(checked.model_dump(exclude_none=True))
    return clean


def describe_models(models: dict[str, Limits]) -> dict[str, ModelLimits]:
    """``GET /v1/policy``'s ``models``: each allowed model's limits, by short name."""
    out: dict[str, ModelLimits] = {}
    for spec in MODELS:
        limits = models.get(spec.id)
        if limits is not None:
            values = limits.model_dump(include=set(_MODEL_LIMITS))
            if not spec.settable_steps:
                values["max_steps"] = None
            out[spec.short] = ModelLimits.model_validate(values)
    return out


def default_document(
    *,
    max_prompt_length: int,
    deny_terms: tuple[str, ...],
    deny_patterns: tuple[str, ...],
    daily_budget_usd: float | None,
    rate_per_minute: int,
) -> PolicyDocument:
    """The document in force until an admin stores one: built from the settings."""
    return PolicyDocument(
        version=1,
        max_prompt_length=max_prompt_length,
        deny_terms=deny_terms,
        deny_patterns=deny_patterns,
        rate_limits={"standard": RateLimitRule(limit=rate_per_minute, period=60)},
        tiers={"standard": Tier(daily_budget_usd=daily_budget_usd)},
    )
