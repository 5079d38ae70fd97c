"""Wiring the local runtime: settings from ``FLUXGATE_*``, stores in a data directory."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from ..composition import assemble
from ..delivery.signing import UrlSigner, parse_signing_keys
from ..jobs.webhooks import HttpPoster
from ..model.port import ImageModel, MultipartImageModel
from ..policy.output_moderation import ImageModerator, ScoutImageModerator
from ..policy.prompt_moderation import GuardModerator, Moderator
from ..provenance.certificates import SigningIdentityError
from ..service.gateway import Gateway, JobPorts, Ports
from ..service.settings import ConfigError, Settings, admin_token_from
from .answers_sqlite import SqliteIdempotency
from .c2pa_signer import LocalClaimSigner, local_claim_signer
from .catalog_sqlite import SqliteCatalog
from .id_token_crypto import CryptographySignatures
from .jobs_sqlite import HttpxPoster, QueueWorker, SqliteJobStore, SqliteQueue
from .jwks_http import HttpxJwksFetcher
from .kv_sqlite import SqliteKV
from .ledger_sqlite import SqliteLedger
from .objects_dir import DirectoryObjects
from .pillow_transform import pillow_transformer
from .placeholder import (
    PLACEHOLDER_CLASSIFIER,
    PlaceholderAI,
    PlaceholderModerator,
    PlaceholderVisionAI,
)
from .provenance_sqlite import SqliteProvenance
from .sweep import Sweeper
from .timestamp_http import HttpxTimestamper
from .usage_sqlite import SqliteUsageEvents
from .window_limiter import WindowRateLimiter

ENV_PREFIX = "FLUXGATE_"
DEFAULT_DATA_DIR = ".fluxgate"
DATA_DIR_VARIABLE = ENV_PREFIX + "DATA_DIR"
# The SQLite stores of a data directory (SQLite gives each -wal/-shm file its database's mode).
DATABASES = (
    "kv.sqlite3",
    "budget.sqlite3",
    "jobs.sqlite3",
    "queue.sqlite3",
    "catalog.sqlite3",
    "usage_events.sqlite3",
    "idempotency.sqlite3",
    "provenance.sqlite3",
)


def data_dir_from(value: str | None, environ: Mapping[str, str]) -> Path:
    """``--data-dir``, else ``$FLUXGATE_DATA_DIR``, else ``./.fluxgate``: the one rule that
    ``fluxgate serve`` and ``fluxgate keys`` share."""
    return Path(value or environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def private_data_dir(data_dir: Path) -> None:
    """Create the data directory (0700) and its databases (0600) readable by us alone.

    It holds API-key hashes, spend, jobs and the signing secret. Files made by an earlier
    version with the umask's mode are tightened; an existing directory keeps its mode (it
    may be a shared one, such as a home directory): only a directory made here is 0700.
    """
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in DATABASES:
        for path in (data_dir / name, data_dir / f"{name}-wal", data_dir / f"{name}-shm"):
            if path.exists():
                path.chmod(0o600)
        os.close(os.open(data_dir / name, os.O_WRONLY | os.O_CREAT, 0o600))


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


def placeholder_latency(environ: Mapping[str, str]) -> float:
    """``FLUXGATE_PLACEHOLDER_LATENCY_SECONDS``: how long the offline image models take per
    image (0 by default). A real FLUX.2 call takes seconds; this lets timeouts, async jobs and
    what a crash in the middle of a generation does be tried offline (``npm run worker``'s
    stand-in honours the same variable)."""
    text = environ.get(ENV_PREFIX + "PLACEHOLDER_LATENCY_SECONDS", "").strip()
    try:
        seconds = float(text) if text else 0.0
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 600:
        raise ConfigError(
            f"{ENV_PREFIX}PLACEHOLDER_LATENCY_SECONDS must be a number of seconds from 0 to 600"
        )
    return seconds


KEY_VARIABLE = ENV_PREFIX + "C2PA_SIGNING_KEY"
CHAIN_VARIABLE = ENV_PREFIX + "C2PA_CERTIFICATE_CHAIN"


def claim_signer(
    settings: Settings, data_dir: Path, environ: Mapping[str, str]
) -> tuple[LocalClaimSigner | None, bool]:
    """The C2PA signer, and whether it is the development one: the operator's identity
    (``FLUXGATE_C2PA_SIGNING_KEY``, a PKCS#8 PEM, and ``FLUXGATE_C2PA_CERTIFICATE_CHAIN``,
    the PEM chain, leaf first), else a development chain made once into the data
    directory (validators call it untrusted); none with ``C2PA=false``."""
    if not settings.c2pa:
        return None, False
    key, chain = environ.get(KEY_VARIABLE) or None, environ.get(CHAIN_VARIABLE) or None
    try:
        return local_claim_signer(data_dir, key, chain), key is None and chain is None
    except SigningIdentityError as exc:
        # The message names what is wrong, never key material.
        raise ConfigError(
            f"Invalid configuration: {KEY_VARIABLE}/{CHAIN_VARIABLE}: {exc}"
        ) from None


def timestamper(settings: Settings) -> HttpxTimestamper | None:
    """``FLUXGATE_C2PA_TIMESTAMP_URL``'s authority, over httpx."""
    url = settings.c2pa_timestamp_url
    return None if url is None or not settings.c2pa else HttpxTimestamper(url)


def local_models(environ: Mapping[str, str]) -> tuple[ImageModel, Moderator, ImageModerator]:
    """The real models through the REST API with credentials, else offline placeholders:
    the image model, the prompt classifier, the output (image) classifier."""
    account, token = environ.get("CLOUDFLARE_ACCOUNT_ID"), environ.get("CLOUDFLARE_API_TOKEN")
    if account and token:
        from .rest import RestAI

        rest = RestAI(account, token)
        return MultipartImageModel(rest), GuardModerator(rest), ScoutImageModerator(rest)
    return (
        MultipartImageModel(PlaceholderAI(placeholder_latency(environ)), stand_in=True),
        PlaceholderModerator(),
        ScoutImageModerator(PlaceholderVisionAI(), name=PLACEHOLDER_CLASSIFIER),
    )


def local_ports(
    data_dir: Path, environ: Mapping[str, str] | None = None, model: ImageModel | None = None
) -> Ports:
    """The local runtime's ports in ``data_dir``: SQLite KV, budget, jobs, queue and
    catalog, a directory of objects, the models of :func:`local_models` (or ``model``),
    Pillow for variants when it is installed."""
    env = dict(os.environ if environ is None else environ)
    settings = Settings.from_mapping(env, prefix=ENV_PREFIX)
    admin_token = admin_token_from(env.get(ENV_PREFIX + "ADMIN_TOKEN"), ENV_PREFIX + "ADMIN_TOKEN")
    private_data_dir(data_dir)
    default_model, moderator, image_moderator = local_models(env)
    signer, development = claim_signer(settings, data_dir, env)
    transformer = pillow_transformer()
    return Ports(
        settings=settings,
        kv=SqliteKV(data_dir / "kv.sqlite3"),
        objects=DirectoryObjects(data_dir / "objects"),
        model=model or default_model,
        signer=UrlSigner(parse_signing_keys(signing_keys(data_dir, env))),
        limiter=WindowRateLimiter(),
        ledger=SqliteLedger(data_dir / "budget.sqlite3"),
        moderator=moderator,
        image_moderator=image_moderator,
        admin_token=admin_token,
        jobs=local_jobs(data_dir),
        catalog=SqliteCatalog(
            data_dir / "catalog.sqlite3", image_retention_days=settings.image_retention_days
        ),
        usage_events=SqliteUsageEvents(data_dir / "usage_events.sqlite3"),
        idempotency=SqliteIdempotency(data_dir / "idempotency.sqlite3"),
        transformer=transformer,
        signatures=CryptographySignatures(),
        jwks=HttpxJwksFetcher(allow_loopback=settings.issuer_allow_loopback),
        claim_signer=signer,
        development_signer=development,
        timestamper=timestamper(settings),
        provenance=SqliteProvenance(data_dir / "provenance.sqlite3"),
        renderer=transformer,
    )


def local_jobs(data_dir: Path, poster: HttpPoster | None = None) -> JobPorts:
    """Async jobs: SQLite job state and queue in the data dir."""
    return JobPorts(
        SqliteJobStore(data_dir / "jobs.sqlite3"),
        SqliteQueue(data_dir / "queue.sqlite3"),
        poster or HttpxPoster(),
    )


@dataclass(frozen=True)
class LocalRuntime:
    """A gateway, the embedded consumer of its job queue and, with a retention, its sweep
    (both run by the app's lifespan)."""

    gateway: Gateway
    worker: QueueWorker | None
    sweeper: Sweeper | None = None

    @classmethod
    def of(cls, ports: Ports) -> LocalRuntime:
        gateway = assemble(ports)
        worker = None
        if ports.jobs is not None and gateway.job_runner is not None:
            queue = ports.jobs.queue
            if not isinstance(queue, SqliteQueue):
                raise TypeError("the local queue consumer reads a SqliteQueue")
            worker = QueueWorker(queue, gateway.job_runner.process)
        return cls(gateway, worker, retention_sweeper(ports))

    @asynccontextmanager
    async def background_jobs(self) -> AsyncIterator[None]:
        """The app's lifespan: run the embedded queue consumer, and the retention sweep
        (at start, then periodically), while the server runs."""
        sweeping = (
            None if self.sweeper is None else asyncio.create_task(self.sweeper.periodically())
        )
        if self.worker is not None:
            self.worker.start()
        try:
            yield
        finally:
            if sweeping is not None:
                sweeping.cancel()
                with suppress(asyncio.CancelledError):
                    await sweeping
            if self.worker is not None:
                await self.worker.stop()


def retention_sweeper(ports: Ports) -> Sweeper | None:
    """The sweep of ``IMAGE_RETENTION_DAYS`` over these ports (none without a retention)."""
    days = ports.settings.image_retention_days
    if days is None:
        return None
    catalog = ports.catalog if isinstance(ports.catalog, SqliteCatalog) else None
    return Sweeper(ports.objects, catalog, days, ports.clock)


def build_runtime(
    data_dir: Path, environ: Mapping[str, str] | None = None, model: ImageModel | None = None
) -> LocalRuntime:
    return LocalRuntime.of(local_ports(data_dir, environ, model))


def build_gateway(
    data_dir: Path, environ: Mapping[str, str] | None = None, model: ImageModel | None = None
) -> Gateway:
    """The gateway alone, for commands that serve no requests (``fluxgate keys``)."""
    return build_runtime(data_dir, environ, model).gateway
