"""Wiring the local runtime: settings from ``FLUXGATE_*``, stores in a data directory."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from .. import FLUX_MODEL_ID
from ..model import ImageModel, MultipartImageModel
from ..moderation import GuardModerator, Moderator
from ..pipeline import Gateway, build_controls
from ..settings import Settings
from ..signing import UrlSigner, parse_signing_keys
from .kv_sqlite import SqliteKV
from .ledger import SqliteLedger
from .objects_dir import DirectoryObjects
from .placeholder import PLACEHOLDER_NAME, PlaceholderAI, PlaceholderModerator
from .ratelimit import WindowRateLimiter

ENV_PREFIX = "FLUXGATE_"
DEFAULT_DATA_DIR = ".fluxgate"


def data_dir_from(value: str | None, environ: Mapping[str, str]) -> Path:
    return Path(value or environ.get("FLUXGATE_DATA_DIR") or DEFAULT_DATA_DIR)


def signing_keys(data_dir: Path, environ: Mapping[str, str]) -> str:
    """The configured keys, else a secret generated once into the data dir (mode 0600)."""
    configured = environ.get(ENV_PREFIX + "URL_SIGNING_KEYS")
    if configured:
        return configured
    path = data_dir / "url-signing-keys"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"local1={secrets.token_urlsafe(48)}\n")
    return path.read_text().strip()


def local_models(environ: Mapping[str, str]) -> tuple[ImageModel, Moderator]:
    """The real models through the REST API with credentials, else offline placeholders."""
    account, token = environ.get("CLOUDFLARE_ACCOUNT_ID"), environ.get("CLOUDFLARE_API_TOKEN")
    if account and token:
        from .rest import RestAI

        rest = RestAI(account, token)
        return MultipartImageModel(rest, model_id=FLUX_MODEL_ID), GuardModerator(rest)
    placeholder = MultipartImageModel(
        PlaceholderAI(), model_id=FLUX_MODEL_ID, name=PLACEHOLDER_NAME
    )
    return placeholder, PlaceholderModerator()


def build_gateway(
    data_dir: Path, environ: Mapping[str, str] | None = None, model: ImageModel | None = None
) -> Gateway:
    env = dict(os.environ if environ is None else environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_mapping(env, prefix=ENV_PREFIX)
    kv = SqliteKV(data_dir / "kv.sqlite3")
    default_model, moderator = local_models(env)
    return Gateway(
        settings=settings,
        kv=kv,
        objects=DirectoryObjects(data_dir / "objects"),
        model=model or default_model,
        signer=UrlSigner(parse_signing_keys(signing_keys(data_dir, env))),
        controls=build_controls(
            settings,
            kv,
            limiter=WindowRateLimiter(),
            ledger=SqliteLedger(data_dir / "budget.sqlite3"),
            moderator=moderator,
        ),
        admin_token=env.get(ENV_PREFIX + "ADMIN_TOKEN") or None,
    )
