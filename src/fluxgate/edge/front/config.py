"""Reading ``[vars]`` and secrets off the Workers ``env``.

The settings are not read here: :class:`EnvVars` hands ``env`` to
:meth:`~fluxgate.service.settings.Settings.from_mapping` as the name → string lookup it
reads, the same code that reads the local runtime's ``FLUXGATE_*`` environment, so every
field is read, and parsed, one way on both. Pydantic-free: the catalog's Durable Object
reads its retention here (:func:`retention_days`) without loading the settings.
"""

from __future__ import annotations

from typing import Any

from ...delivery.signing import UrlSigner, parse_signing_keys
from ...store.ports import MAX_RETENTION_DAYS


def env_text(env: Any, name: str) -> str | None:
    """A var or secret; ``None`` when unset, empty or not a string (a binding)."""
    value = getattr(env, name, None)
    return value if isinstance(value, str) and value else None


class EnvVars:
    """``env`` as a name → string lookup (:func:`env_text` of each name asked for)."""

    def __init__(self, env: Any) -> None:
        self._env = env

    def get(self, name: str, /) -> str | None:
        return env_text(self._env, name)


def retention_days(env: Any) -> int | None:
    """``IMAGE_RETENTION_DAYS`` read without pydantic (the catalog's Durable Object's): a
    whole number of days, else ``None`` (off; a value ``Settings`` refuses makes the API
    answer 503 anyway)."""
    text = (env_text(env, "IMAGE_RETENTION_DAYS") or "").strip()
    return int(text) if text.isdigit() and 0 < int(text) <= MAX_RETENTION_DAYS else None


def signer_from_env(env: Any) -> UrlSigner:
    """The URL signer for ``URL_SIGNING_KEYS`` (raises ``SigningConfigError`` when unset
    or invalid); made once per isolate, with its gateway."""
    return UrlSigner(parse_signing_keys(env_text(env, "URL_SIGNING_KEYS") or ""))
