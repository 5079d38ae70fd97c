"""The composition root: one :class:`~fluxgate.service.gateway.Gateway`, wired from a
runtime's :class:`~fluxgate.service.gateway.Ports`.

Everything above the ports is built here and nowhere else, so both runtimes run the same
objects wired the same way, and nothing is attached to the gateway after it is built. It
sits above the API layer because one wire crosses it: a job's webhook carries the body of
``GET /v1/jobs/{id}``, so the webhook sender is given the API's presenter.
"""

from __future__ import annotations

from .access.auth import KeyStore
from .access.id_tokens import IdTokenVerifier, JwksCache
from .api.present import Presenter
from .delivery.downloads import NO_EDGE_CACHE, FilePorts
from .delivery.marking import Marks
from .delivery.retention import retained
from .delivery.variants import RecentFailures, VariantMaker
from .jobs.webhooks import WebhookPolicy, WebhookSender
from .listings.catalog import CatalogWriter
from .model.coalesce import InflightCoalescer, PollingCoalescer
from .model.family import MODELS
from .policy.document_store import PolicyStore
from .policy.output_moderation import OutputScreen
from .service.async_jobs import Jobs
from .service.controls import Controls
from .service.gateway import Gateway, Ports
from .service.generation import CachePolicy, Generator
from .service.idempotency import Idempotency
from .service.job_runner import JobRunner, RetryPolicy
from .service.provenance_log import ProvenanceLog
from .service.readiness import Readiness, credentials_state
from .service.sign_in import SignIn
from .store.answers import Caps

__all__ = ["assemble", "marks", "provenance_log", "variant_maker"]


def assemble(ports: Ports) -> Gateway:
    settings, clock = ports.settings, ports.clock
    provenance = provenance_log(ports)
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
        marks=marks(ports),
        provenance=provenance,
    )
    describe_job = Presenter(settings, ports.signer, clock).job
    jobs, runner = None, None
    if ports.jobs is not None:
        webhooks = WebhookSender(
            store=ports.jobs.store,
            queue=ports.jobs.queue,
            keys=keys,
            signer=ports.signer,
            poster=ports.jobs.poster,
            describe=describe_job,
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
    variants = variant_maker(ports, provenance)
    verifier = None
    if ports.signatures is not None and ports.jwks is not None:
        jwks = JwksCache(ports.jwks, clock, allow_loopback=settings.issuer_allow_loopback)
        verifier = IdTokenVerifier(jwks, ports.signatures, clock)
    return Gateway(
        settings=settings,
        served_names={spec.id: ports.model.served_name(spec) for spec in MODELS},
        keys=keys,
        sign_in=SignIn(
            keys,
            verifier,
            ports.signer,
            audience=settings.token_audience,
            max_ttl_seconds=settings.token_max_ttl_seconds,
            clock=clock,
        ),
        policies=policies,
        controls=controls,
        generator=generator,
        objects=ports.objects,
        signer=ports.signer,
        limiter=ports.limiter,
        admin_token=ports.admin_token,
        jobs=jobs,
        job_runner=runner,
        readiness=Readiness(
            kv=ports.kv,
            objects=ports.objects,
            model=ports.model,
            content_credentials=credentials_state(
                settings.c2pa, ports.claim_signer, ports.development_signer
            ),
        ),
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
        variants=variants,
        downloads=FilePorts(
            signer=ports.signer,
            objects=ports.objects,
            variants=variants,
            edge=ports.edge_cache or NO_EDGE_CACHE,
            forget=generator.forget,
            clock=clock,
        ),
        provenance=provenance,
        clock=clock,
    )


def marks(ports: Ports) -> Marks:
    """The XMP disclosure (``AI_DISCLOSURE``) and the C2PA signer (``C2PA``, when the
    runtime has a signing identity) every stored image gets."""
    signer = ports.claim_signer if ports.settings.c2pa else None
    return Marks(
        disclose=ports.settings.ai_disclosure, signer=signer, timestamper=ports.timestamper
    )


def provenance_log(ports: Ports) -> ProvenanceLog | None:
    """The provenance index's writer and reader, when the runtime has an index. Manifests
    count as ours when they are signed by the runtime's identity (none with ``C2PA=false``:
    images are then recognised by their hash and fingerprint only)."""
    if ports.provenance is None:
        return None
    return ProvenanceLog(ports.provenance, ports.renderer, ports.claim_signer)


def variant_maker(ports: Ports, provenance: ProvenanceLog | None = None) -> VariantMaker | None:
    if ports.transformer is None:
        return None
    return VariantMaker(
        ports.objects,
        ports.transformer,
        marks=marks(ports),
        provenance=provenance,
        failures=RecentFailures(ports.clock),
        coalescer=ports.variant_coalescer or PollingCoalescer(),
    )
