"""Reading ``[vars]`` and secrets off the Workers ``env``, without pydantic.

Kept apart from the app wiring so that the file route can build its URL verifier without
importing FastAPI or pydantic (cold-start cost, and testability in plain Pyodide).
"""

from __future__ import annotations

from typing import Any

from ...delivery.signing import UrlSigner, parse_signing_keys
from ...store.ports import MAX_RETENTION_DAYS

SETTING_NAMES = (
    "CACHE_SCOPE",
    "CACHE_TTL_SECONDS",
    "SIGNED_URL_TTL_SECONDS",
    "SIGNED_URL_MAX_TTL_SECONDS",
    "PUBLIC_BASE_URL",
    "MAX_PROMPT_LENGTH",
    "DENY_TERMS",
    "DENY_PATTERNS",
    "MAX_REFERENCE_IMAGE_BYTES",
    "MAX_BODY_BYTES",
    "DAILY_BUDGET_USD",
    "RATE_LIMIT_PER_MINUTE",
    "POLICY_CACHE_SECONDS",
    "TOKEN_AUDIENCE",
    "TOKEN_MAX_TTL_SECONDS",
    "AUDIT_LOG_PROMPTS",
    "WEBHOOK_ALLOW_LOOPBACK",
    "WEBHOOK_RETRY_BASE_SECONDS",
    "WEBHOOK_MAX_ATTEMPTS",
    "JOB_MAX_ATTEMPTS",
    "GENERATION_LEASE_SECONDS",
    "IDEMPOTENCY_MAX_KEYS",
    "IDEMPOTENCY_MAX_BYTES",
    "API_DOCS",
    "CORS_ALLOWED_ORIGINS",
    "AI_DISCLOSURE",
    "IMAGE_RETENTION_DAYS",
    "FAST_PATH",
)

_signers: dict[str, UrlSigner] = {}


def env_text(env: Any, name: str) -> str | None:
    value = getattr(env, name, None)
    return value if isinstance(value, str) and value else None


# The spellings of a boolean setting that pydantic (``Settings``) accepts.
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}


def env_flag(env: Any, name: str, *, default: bool) -> bool:
    """A boolean var read without pydantic (the file route's), as ``Settings`` reads it;
    unset or unreadable: ``default``."""
    text = (env_text(env, name) or "").strip().lower()
    return True if text in _TRUE else False if text in _FALSE else default


def retention_days(env: Any) -> int | None:
    """``IMAGE_RETENTION_DAYS`` read without pydantic (the catalog's Durable Object's): a
    whole number of days, else ``None`` (off; a value ``Settings`` refuses makes the API
    answer 503 anyway)."""
    text = (env_text(env, "IMAGE_RETENTION_DAYS") or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_RETENTION_DAYS else None


def env_settings(env: Any) -> dict[str, str]:
    return {name: value for name in SETTING_NAMES if (value := env_text(env, name)) is not None}


def signer_from_env(env: Any) -> UrlSigner:
    """The URL signer for ``URL_SIGNING_KEYS``, parsed once per isolate and secret value."""
    spec = env_text(env, "URL_SIGNING_KEYS") or ""
    signer = _signers.get(spec)
    if signer is None:
        signer = UrlSigner(parse_signing_keys(spec))  # raises SigningConfigError if unset
        _signers.clear()
        _signers[spec] = signer
    return signer
