"""What a request needs, wired once: the :class:`Gateway`, and the :class:`Ports` it is
built from.

Each runtime gathers its ports (the KV namespace, the bucket, the model, the limiter, the
ledger... Workers bindings on the edge, SQLite and a directory locally) and hands them to
:func:`fluxgate.composition.assemble` once per process or isolate, which builds everything
above them. The gateway knows nothing of HTTP: the API layer presents what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from ..access.auth import KeyStore, Principal
from ..access.id_tokens import JwksFetcher, SignatureVerifier
from ..access.ledger import BudgetLedger
from ..access.rate_limits import RateLimiter
from ..delivery.downloads import EdgeCache, FilePorts
from ..delivery.signing import UrlSigner
from ..delivery.variants import ImageTransformer, VariantMaker
from ..jobs.table import JobQueue, JobStore
from ..jobs.webhooks import HttpPoster
from ..listings.catalog import Catalog
from ..listings.usage_events import UsageEvents
from ..model.coalesce import Coalescer
from ..model.family import DEFAULT_MODEL, MODELS, ModelSpec, find_model
from ..model.port import ImageModel
from ..policy.document_store import PolicyStore
from ..policy.output_moderation import ImageModerator
from ..policy.prompt_moderation import Moderator
from ..provenance.fingerprint import GrayRenderer
from ..provenance.index import ProvenanceIndex
from ..provenance.signer import ClaimSigner
from ..provenance.timestamp import Timestamper
from ..request_context import note_caller
from ..store.answers import IdempotencyStore
from ..store.ports import KVStore, ObjectStore
from .async_jobs import Jobs
from .controls import Controls
from .generation import Generator
from .idempotency import Idempotency
from .job_runner import JobRunner
from .provenance_log import ProvenanceLog
from .readiness import Readiness
from .settings import Settings
from .sign_in import SignIn


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
    # One transformation per variant in flight; none: within the process.
    variant_coalescer: Coalescer | None = None
    edge_cache: EdgeCache | None = None  # in front of downloads; none: no cache
    # ID tokens (sign-in exchange, App Check): the runtime's signature check and JWKS
    # fetcher; without either, the exchange answers 501 exchange_unavailable.
    signatures: SignatureVerifier | None = None
    jwks: JwksFetcher | None = None
    # C2PA: the signing identity (none: images are stored without Content Credentials),
    # and whether it is the local development chain (validators call it untrusted).
    claim_signer: ClaimSigner | None = None
    development_signer: bool = False
    timestamper: Timestamper | None = None  # C2PA_TIMESTAMP_URL's authority; none: no stamps
    # "Did we make this image?": the index of hashes and fingerprints, and what renders an
    # image small for its fingerprint; without the index POST /v1/provenance/verify is 501.
    provenance: ProvenanceIndex | None = None
    renderer: GrayRenderer | None = None
    clock: Callable[[], float] = field(default=time.time)


@dataclass(frozen=True)
class Gateway:
    """Everything a request needs, wired once. Routers use these members directly."""

    settings: Settings
    # What each model of the family runs as here, by id (:meth:`ImageModel.served_name`):
    # asked of the model port once, when the gateway is built.
    served_names: Mapping[str, str]
    keys: KeyStore
    sign_in: SignIn  # the sign-in exchange and App Check
    policies: PolicyStore
    controls: Controls
    generator: Generator
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
    downloads: FilePorts  # what signed downloads use (delivery/downloads.py)
    provenance: ProvenanceLog | None  # POST /v1/provenance/verify; none: 501
    clock: Callable[[], float]

    @property
    def model_name(self) -> str:
        """The default model's served name (``/healthz``'s ``model``)."""
        return self.served_name(DEFAULT_MODEL)

    @property
    def model_names(self) -> list[str]:
        """Every model's served name, the default first."""
        return [self.served_name(spec) for spec in MODELS]

    def served_name(self, spec: ModelSpec) -> str:
        """What ``spec`` runs as here (its id, or its placeholder's name offline)."""
        return self.served_names[spec.id]

    def find_model(self, name: str) -> ModelSpec | None:
        """A model by any of its names, or by the name it is served under here: a
        placeholder's name is a model's only where the placeholder draws for it."""
        found = find_model(name)
        if found is not None:
            return found
        return next((spec for spec in MODELS if self.served_name(spec) == name), None)

    async def authenticate(
        self, authorization: str | None, app_check: str | None = None
    ) -> Principal:
        """The caller of a request (every route and the direct path come through here),
        its key id noted for the request's access-log line. ``app_check``: the request's
        ``X-Firebase-AppCheck``, which a client token's key may require."""
        principal = await self.keys.authenticate(
            authorization, signer=self.signer, audience=self.settings.token_audience
        )
        note_caller(principal.key.id)
        await self.sign_in.check_request(principal, app_check)
        return principal
