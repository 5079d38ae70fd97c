"""The policy document: versioned data that says what each tier of key may do.

Stored as JSON (KV ``policy:current`` on Workers, a file locally) and validated here. A key
names a tier; its per-key ``overrides`` replace single limits. Deny rules are global plus
per tier. Rate limits are named (``standard``, ``burst``...): on Workers each name is a Rate
Limiting binding ``RATE_LIMIT_<NAME>`` whose limit and period must match the document.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .model import MAX_REFERENCE_IMAGES, MAX_SIZE, MIN_SIZE
from .policy import PromptPolicy

ModerationMode = Literal["off", "fail_open", "fail_closed"]
_NAME = r"^[a-z][a-z0-9_]{0,31}$"


class RateLimitRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    limit: int = Field(ge=1, le=1_000_000, description="Requests allowed per period.")
    period: Literal[10, 60] = Field(60, description="Window in seconds (Cloudflare: 10 or 60).")


class Limits(BaseModel):
    """Limits of a tier; every field may also be overridden per key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate_limit: str | None = Field("standard", description="Name of a rate-limit rule; null: none.")
    daily_budget_usd: float | None = Field(10.0, ge=0, description="null: unlimited.")
    max_width: int = Field(MAX_SIZE, ge=MIN_SIZE, le=MAX_SIZE)
    max_height: int = Field(MAX_SIZE, ge=MIN_SIZE, le=MAX_SIZE)
    max_steps: int = Field(50, ge=1, le=50)
    max_reference_images: int = Field(MAX_REFERENCE_IMAGES, ge=0, le=MAX_REFERENCE_IMAGES)
    moderation: ModerationMode = "off"


class LimitOverrides(BaseModel):
    """Per-key replacements for single limits (what an admin may set on a key).

    ``null`` (or absent) means "as the tier says"; the rate limit must name a rule of the
    policy document in force when the key is used (an unknown name falls back to the tier's).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate_limit: str | None = None
    daily_budget_usd: float | None = Field(None, ge=0)
    max_width: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_height: int | None = Field(None, ge=MIN_SIZE, le=MAX_SIZE)
    max_steps: int | None = Field(None, ge=1, le=50)
    max_reference_images: int | None = Field(None, ge=0, le=MAX_REFERENCE_IMAGES)
    moderation: ModerationMode | None = None


class Tier(Limits):
    deny_terms: tuple[str, ...] = ()
    deny_patterns: tuple[str, ...] = ()


def compile_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc
    return patterns


class PolicyDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, description="Must increase with every change.")
    default_tier: str = "standard"
    max_prompt_length: int = Field(2048, ge=1, le=100_000)
    deny_terms: tuple[str, ...] = ()
    deny_patterns: tuple[str, ...] = ()
    rate_limits: dict[str, RateLimitRule] = Field(
        default_factory=lambda: {"standard": RateLimitRule(limit=60, period=60)}
    )
    tiers: dict[str, Tier] = Field(default_factory=lambda: {"standard": Tier()})

    @field_validator("deny_patterns")
    @classmethod
    def _patterns_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return compile_patterns(value)

    @model_validator(mode="after")
    def _consistent(self) -> PolicyDocument:
        for name in [*self.rate_limits, *self.tiers]:
            if not re.match(_NAME, name):
                raise ValueError(f"name {name!r} must match {_NAME}")
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
    rate_limit: RateLimitRule | None
    max_prompt_length: int
    deny_rules: int = Field(description="How many deny terms and patterns apply (not which).")
    subject: str | None = None


def effective_limits(tier: Tier, overrides: dict[str, Any]) -> Limits:
    base = tier.model_dump(include=set(Limits.model_fields))
    clean = LimitOverrides.model_validate(overrides).model_dump(exclude_none=True)
    return Limits.model_validate({**base, **clean})


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
