"""The composition root: one :class:`Gateway`, wired from a runtime's :class:`Ports`.

Each runtime gathers its ports (the KV namespace, the bucket, the model, the limiter, the
ledger... Workers bindings on the edge, SQLite and a directory locally) and calls
:func:`assemble` once per process or isolate. Everything above the ports is built here and
nowhere else, so both runtimes run the same objects wired the same way, and nothing is
attached to the gateway after it is built.

This is the one module at the package root that knows the API layer (it gives the webhook
sender the API's job body); the core modules below it do not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .api.present import Presenter
from .auth import KeyStore, Principal
from .catalog import Catalog, CatalogWriter
from .coalesce import Coalescer, InflightCoalescer
from .controls import Controls
from .generation import CachePolicy, Generator
from .idempotency import Idempotency
from .idempotency_store import Caps, IdempotencyStore
from .image_model import ImageModel
from .job_runner import JobRunner, RetryPolicy
from .job_service import Jobs
from .job_table import JobQueue, JobStore
from .ledger import BudgetLedger
from .models import DEFAULT_MODEL, MODELS, ModelSpec, find_model
from .moderation import Moderator
from .output_moderation import ImageModerator, OutputScreen
from .policy_store import PolicyStore
from .ratelimit import RateLimiter
from .readiness import Readiness
from .request_context import note_caller
from .retention import retained
from .settings import Settings
from .signing import UrlSigner
from .storage import KVStore, ObjectStore
from .usage_events import UsageEvents
from .variants import ImageTransformer, RecentFailures, VariantMaker
from .webhooks import HttpPoster, WebhookPolicy, WebhookSender


@dataclass(frozen=True)
class JobPorts:
    """Async jobs: a transactional job store, a queue with delays, an HTTP poster."""

    store: JobStore
    queue: JobQueue
    poster: HttpPoster


@dataclass(frozen=True)
class Ports:
    """What a runtime provides. ``coalescer`` defaults to coalescing within the process;
    without ``jobs`` async generations answer ``501 async_unavailable``; without
    ``catalog`` the listings answer ``501 listing_unavailable``."""

    settings: Settings
    kv: KVStore
    objects: ObjectStore
    model: ImageModel
    signer: UrlSigner
    limiter: RateLimiter
    ledger: BudgetLedger
    moderator: Moderator
    admin_token: str | None = None
    coalescer: Coalescer | None = None
    jobs: JobPorts | None = None
    catalog: Catalog | None = None
    usage_events: UsageEvents | None = None  # per-generation events for charts; none: off
    idempotency: IdempotencyStore | None = None  # Idempotency-Key; none: the header is refused
    # The generated image's classifier (output moderation); none: a tier that moderates
    # output finds it unavailable (and fails open or closed as it says).
    image_moderator: ImageModerator | None = None
    transformer: ImageTransformer | None = None  # image variants; none: 501 variants_unavailable
    clock: Callable[[], float] = field(default=time.time)


@dataclass(frozen=True)
class Gateway:
    """Everything a request needs, wired once. Routers use these members directly."""

    settings: Settings
    keys: KeyStore
    policies: PolicyStore
    controls: Controls
    generator: Generator
    presenter: Presenter
    objects: ObjectStore  # what signed downloads stream from
    signer: UrlSigner
    limiter: RateLimiter  # also counts failed credential attempts
    admin_token: str | None
    jobs: Jobs | None
    job_runner: JobRunner | None
    catalog: Catalog | None  # what the listings read (writes go through the generator, jobs)
    readiness: Readiness  # /readyz: the ports probed
    idempotency: Idempotency  # Idempotency-Key on the generation routes
    variants: VariantMaker | None  # makes variants on first download; none: unavailable
    clock: Callable[[], float]

    @property
    def model_name(self) -> str:
        """The default model's served name (``/healthz``'s ``model``)."""
        return self.generator.served_name(DEFAULT_MODEL)

    @property
    def model_names(self) -> list[str]:
        """Every model's served name, the default first."""
        return [self.served_name(spec) for spec in MODELS]

    def served_name(self, spec: ModelSpec) -> str:
        """What ``spec`` runs as here (its id, or its placeholder's name offline)."""
        return self.generator.served_name(spec)

    def find_model(self, name: str) -> ModelSpec | None:
        """A model by any of its names, or by the name it is served under here: a
        placeholder's name is a model's only where the placeholder draws for it."""
        found = find_model(name)
        if found is not None:
            return found
        return next((spec for spec in MODELS if self.served_name(spec) == name), None)

    async def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a request (every route and the direct path come through here),
        its key id noted for the request's access-log line."""
        principal = await self.keys.authenticate(
            authorization, signer=self.signer, audience=self.settings.token_audience
        )
        note_caller(principal.key.id)
        return principal


def assemble(ports: Ports) -> Gateway:
    settings, clock = ports.settings, ports.clock
    catalog = CatalogWriter(ports.catalog)  # listings: written on a miss and as jobs move
    keys = KeyStore(ports.kv, clock=clock)
    policies = PolicyStore(
        ports.kv, settings.default_policy(), cache_seconds=settings.policy_cache_seconds
    )
    controls = Controls(
        policies=policies,
        limiter=ports.limiter,
        ledger=ports.ledger,
        moderator=ports.moderator,
        clock=clock,
        lease_seconds=settings.generation_lease_seconds,
    )
    generator = Generator(
        kv=retained(ports.kv, settings.image_retention_days),  # image entries expire
        objects=ports.objects,
        model=ports.model,
        controls=controls,
        coalescer=ports.coalescer or InflightCoalescer(),
        cache=CachePolicy(settings.cache_scope, settings.cache_ttl_seconds),
        catalog=catalog,
        events=ports.usage_events,
        output=OutputScreen(ports.image_moderator, clock=clock),
        clock=clock,
        disclose=settings.ai_disclosure,
    )
    presenter = Presenter(settings, ports.signer, clock)
    jobs, runner = None, None
    if ports.jobs is not None:
        webhooks = WebhookSender(
            store=ports.jobs.store,
            queue=ports.jobs.queue,
            keys=keys,
            signer=ports.signer,
            poster=ports.jobs.poster,
            describe=presenter.job,
            policy=WebhookPolicy(
                allow_loopback=settings.webhook_allow_loopback,
                retry_base_seconds=settings.webhook_retry_base_seconds,
                max_attempts=settings.webhook_max_attempts,
            ),
            clock=clock,
        )
        jobs = Jobs(
            generator=generator,
            controls=controls,
            objects=ports.objects,
            store=ports.jobs.store,
            queue=ports.jobs.queue,
            webhooks=webhooks,
            catalog=catalog,
            clock=clock,
        )
        runner = JobRunner(
            generator=generator,
            controls=controls,
            keys=keys,
            objects=ports.objects,
            store=ports.jobs.store,
            webhooks=webhooks,
            retry=RetryPolicy(settings.job_max_attempts, settings.webhook_retry_base_seconds),
            catalog=catalog,
            clock=clock,
        )
    return Gateway(
        settings=settings,
        keys=keys,
        policies=policies,
        controls=controls,
        generator=generator,
        presenter=presenter,
        objects=ports.objects,
        signer=ports.signer,
        limiter=ports.limiter,
        admin_token=ports.admin_token,
        jobs=jobs,
        job_runner=runner,
        readiness=Readiness(kv=ports.kv, objects=ports.objects, model=ports.model),
        idempotency=Idempotency(
            ports.idempotency,
            clock=clock,
            caps=Caps(
                settings.idempotency_max_keys,
                settings.idempotency_max_bytes,
                settings.generation_lease_seconds,
            ),
        ),
        catalog=ports.catalog,
        variants=variant_maker(ports),
        clock=clock,
    )


def variant_maker(ports: Ports) -> VariantMaker | None:
    if ports.transformer is None:
        return None
    return VariantMaker(
        ports.objects,
        ports.transformer,
        disclose=ports.settings.ai_disclosure,
        failures=RecentFailures(ports.clock),
    )
