"""Wiring the local runtime: settings from ``FLUXGATE_*``, stores in a data directory."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from .. import FLUX_MODEL_ID
from ..async_jobs import Jobs
from ..model import ImageModel, MultipartImageModel
from ..moderation import GuardModerator, Moderator
from ..pipeline import Gateway, build_controls
from ..settings import Settings
from ..signing import UrlSigner, parse_signing_keys
from ..webhooks import HttpPoster
from .jobs import HttpxPoster, QueueWorker, SqliteJobStore, SqliteQueue
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
    gateway = Gateway(
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
    attach_jobs(gateway, data_dir)
    return gateway


def attach_jobs(gateway: Gateway, data_dir: Path, poster: HttpPoster | None = None) -> None:
    """Async jobs: SQLite job state and queue in the data dir, consumed in the background."""
    settings = gateway.settings
    queue = SqliteQueue(data_dir / "queue.sqlite3")
    gateway.jobs = Jobs(
        gateway,
        SqliteJobStore(data_dir / "jobs.sqlite3"),
        queue,
        poster or HttpxPoster(),
        allow_loopback=settings.webhook_allow_loopback,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        max_attempts=settings.job_max_attempts,
        webhook_max_attempts=settings.webhook_max_attempts,
        clock=gateway.clock,
    )
    gateway.queue_worker = QueueWorker(queue, gateway.jobs.process)  # type: ignore[attr-defined]


@asynccontextmanager
async def background_jobs(gateway: Gateway) -> AsyncIterator[None]:
    """The app's lifespan: run the embedded queue consumer while the server runs."""
    worker: QueueWorker = gateway.queue_worker  # type: ignore[attr-defined]
    worker.start()
    try:
        yield
    finally:
        await worker.stop()
