"""Gateway settings, validated once at start-up.

The same names are read from ``[vars]`` on Workers (``CACHE_TTL_SECONDS``) and from the
environment locally, prefixed (``FLUXGATE_CACHE_TTL_SECONDS``), by one function,
:meth:`Settings.from_mapping`, which takes each runtime's name → string lookup and reads
every field from it: a field added here is read on both. A bad value stops start-up (the
local server) or answers ``503 server_misconfigured`` (the Worker) with a message naming
the variable, instead of surfacing later as a 500.

``FAST_PATH`` (default true): JSON generations are answered by the one generation handler
(``api/generate.py``) in front of the web framework, chosen from the request line and
headers alone, since on Workers the framework's routing and ASGI bridge cost as much CPU as
a cache hit. The answer is the same either way; false sends every request through FastAPI,
which calls the same handler (to rule the fast path out when something looks wrong).
"""

from __future__ import annotations

import json
import re
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..access.cors import CorsConfigError, parse_origins
from ..policy.document import Budget, DenyRules, PolicyDocument, compile_patterns, default_document
from ..provenance.timestamp import tsa_host
from ..store.ports import KV_MIN_TTL_SECONDS, MAX_RETENTION_DAYS


class ConfigError(ValueError):
    pass


class Variables(Protocol):
    """Where settings are read from: a name → string lookup (``os.environ``, a ``dict``,
    the Worker's ``env`` through ``edge/front/config.py``); ``None`` when unset."""

    def get(self, name: str, /) -> str | None: ...


MIN_ADMIN_TOKEN_LENGTH = 32


def admin_token_from(value: str | None, name: str = "ADMIN_TOKEN") -> str | None:
    """The admin token, or ``None`` (admin off) when unset.

    Held to the rule of the URL-signing secrets: a short token can be guessed, and it
    unlocks every key. ``name`` is the variable as the runtime spells it; the message
    never contains the value.
    """
    if value is None or value == "":
        return None
    if len(value) < MIN_ADMIN_TOKEN_LENGTH or value != value.strip():
        raise ConfigError(
            f"Invalid configuration: {name} must be at least {MIN_ADMIN_TOKEN_LENGTH} "
            "characters, without surrounding whitespace (e.g. openssl rand -hex 24)."
        )
    return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    cache_scope: Literal["key", "global"] = "key"
    cache_ttl_seconds: int = Field(7 * 24 * 3600, ge=KV_MIN_TTL_SECONDS)
    signed_url_ttl_seconds: int = Field(3600, ge=60)
    signed_url_max_ttl_seconds: int = Field(86400, ge=60, le=7 * 24 * 3600)
    public_base_url: str | None = None
    max_prompt_length: int = Field(2048, ge=1, le=100_000)
    deny_terms: DenyRules = ()
    deny_patterns: DenyRules = ()
    max_reference_image_bytes: int = Field(1024 * 1024, ge=1024, le=20 * 1024 * 1024)
    max_body_bytes: int = Field(6 * 1024 * 1024, ge=64 * 1024, le=100 * 1024 * 1024)
    # Defaults of the built-in policy document (in force until an admin stores one).
    daily_budget_usd: Budget | None = 10.0
    rate_limit_per_minute: int = Field(60, ge=1, le=1_000_000)
    policy_cache_seconds: float = Field(30.0, ge=0, le=3600)
    # Client tokens for mobile apps.
    token_audience: str = Field("fluxgate", min_length=1, max_length=200)
    token_max_ttl_seconds: int = Field(3600, ge=60, le=86400)
    # Audit log: prompts are logged as SHA-256 unless this is true.
    audit_log_prompts: bool = False
    # Async jobs and webhooks.
    webhook_allow_loopback: bool = False  # true only for local testing
    # Sign-in exchange: issuers and JWKS on loopback (an OIDC issuer double); testing only.
    issuer_allow_loopback: bool = False
    webhook_retry_base_seconds: float = Field(5.0, ge=0, le=600)
    webhook_max_attempts: int = Field(6, ge=1, le=20)
    job_max_attempts: int = Field(3, ge=1, le=10)
    # How long a synchronous generation may hold its charge (and its Idempotency-Key) before
    # its request is presumed dead: the charge is then refunded and a retry may run.
    generation_lease_seconds: int = Field(600, ge=1, le=3600)
    # Idempotency-Key answers are stored for 24 h: at most this many per API key, and this
    # many bytes (idempotency_store.py); past either a new key is 429. The defaults hold a
    # day of the default rate limit (60 a minute) of keyed requests.
    idempotency_max_keys: int = Field(100_000, ge=1, le=10_000_000)
    idempotency_max_bytes: int = Field(128 * 1024 * 1024, ge=8192, le=8 * 1024**3)
    # /docs and /redoc (Swagger UI, ReDoc) load their scripts from a CDN: off unless asked.
    api_docs: bool = False
    # Browser origins allowed to call the API (cors.py): "*", or a comma-separated list.
    cors_allowed_origins: str = ""
    # AI disclosure (disclosure.py): an IPTC "trainedAlgorithmicMedia" XMP packet in every
    # stored image, originals and variants. Off: the model's bytes are stored as they are.
    ai_disclosure: bool = True
    # C2PA Content Credentials (delivery/marking.py): a signed manifest in every stored
    # image, with the signing identity of the C2PA_SIGNING_KEY and C2PA_CERTIFICATE_CHAIN
    # secrets (locally, without them, a development chain in the data directory). Off: none.
    c2pa: bool = True
    # An RFC 3161 time-stamp authority: each C2PA signature is time-stamped, so that its
    # credentials stay valid after the signing certificate expires. Unset: none.
    c2pa_timestamp_url: str | None = None
    # Retention: images (their objects, variants, records, cache entries and listing rows)
    # are deleted this many days after they were made; unset: kept until deleted. On
    # Workers an R2 lifecycle rule deletes the objects (docs/operations.md, "Retention"),
    # locally the sweep.
    image_retention_days: int | None = Field(None, ge=1, le=MAX_RETENTION_DAYS)
    # JSON generations answered in front of the web framework (see the module docstring).
    fast_path: bool = True

    @field_validator("deny_terms", "deny_patterns", mode="before")
    @classmethod
    def _json_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return ()
            if text.startswith("["):
                return json.loads(text)
            return [part for part in text.split(",") if part.strip()]
        return value

    @field_validator("deny_patterns")
    @classmethod
    def _compiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return compile_patterns(value)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        try:
            parse_origins(value)
        except CorsConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("public_base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an absolute http(s) URL without query or fragment")
        return value

    @field_validator("c2pa_timestamp_url")
    @classmethod
    def _timestamp_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        tsa_host(value.strip())  # its ValueError names no part of the URL
        return value.strip()

    @model_validator(mode="after")
    def _ttl_within_cap(self) -> Settings:
        if self.signed_url_ttl_seconds > self.signed_url_max_ttl_seconds:
            raise ValueError("SIGNED_URL_TTL_SECONDS exceeds SIGNED_URL_MAX_TTL_SECONDS")
        return self

    def default_policy(self) -> PolicyDocument:
        return default_document(
            max_prompt_length=self.max_prompt_length,
            deny_terms=self.deny_terms,
            deny_patterns=self.deny_patterns,
            daily_budget_usd=self.daily_budget_usd,
            rate_per_minute=self.rate_limit_per_minute,
        )

    @classmethod
    def from_mapping(cls, values: Variables, prefix: str = "") -> Settings:
        """Read ``PREFIX + FIELD_NAME`` for each field (unset or empty: its default);
        nothing else is read. Raises :class:`ConfigError` naming the variable."""
        raw = {
            name: value
            for name in cls.model_fields
            if (value := values.get(prefix + name.upper())) not in (None, "")
        }
        try:
            return cls.model_validate(raw)
        except (ValidationError, json.JSONDecodeError) as exc:
            raise ConfigError(_describe(exc, prefix)) from None


def _describe(exc: Exception, prefix: str) -> str:
    if isinstance(exc, ValidationError):
        lines = []
        for err in exc.errors():
            loc = err["loc"][0] if err["loc"] else ""
            name = f"{prefix}{str(loc).upper()}" if loc else "settings"
            lines.append(f"{name}: {err['msg']}")
        return "Invalid configuration: " + "; ".join(lines)
    return f"Invalid configuration: {exc}"
