"""What the Worker hands its app, its fast path and its file route: the isolate's gateway,
built once from ``env``, and who sent a request.

Its own module, apart from the front that serves requests (``serve.py``), so that the app's
calls for the gateway and the client (:func:`gateway_of`, :func:`connecting_ip`: the ports
``create_app`` is given) go down into it, never back into the front still serving the
request.
"""

from __future__ import annotations

import logging
from typing import Any

from ...composition import assemble
from ...delivery.signing import SigningConfigError
from ...errors import ApiError
from ...model.coalesce import Coalescer, NoCoalescing
from ...policy.output_moderation import ScoutImageModerator
from ...policy.prompt_moderation import GuardModerator
from ...provenance.certificates import SigningIdentityError
from ...service.gateway import Gateway, JobPorts, Ports
from ...service.settings import ConfigError, Settings, admin_token_from
from ...store.records import GenerationRecord
from ..bindings.ai import WorkersAIRunner, WorkersImageModel
from ..bindings.analytics_engine import usage_events_from_env
from ..bindings.answers_object import idempotency_from_env
from ..bindings.c2pa_web_crypto import claim_signer_from_env
from ..bindings.catalog_object import WorkersCatalog
from ..bindings.coalescer_object import DurableCoalescer
from ..bindings.edge_cache import WorkersEdgeCache
from ..bindings.images_binding import transformer_from_env
from ..bindings.job_objects import FetchPoster, WorkersJobStore, WorkersQueue
from ..bindings.kv import WorkersKV
from ..bindings.ledger_object import WorkersLedger
from ..bindings.provenance_object import provenance_from_env
from ..bindings.r2 import WorkersR2
from ..bindings.rate_limiting import WorkersRateLimiter
from ..bindings.timestamp_fetch import FetchTimestamper
from ..bindings.web_crypto import FetchJwksFetcher, WebCryptoSignatures
from .config import EnvVars, env_text, signer_from_env

log = logging.getLogger("fluxgate.worker")
_gateway: Gateway | None = None


def gateway_from_env(env: Any) -> Gateway:
    """One gateway per isolate, built on the first event.

    Bindings, vars and secrets are fixed for an isolate's life (a new deploy or secret
    starts new isolates), so the settings, the signer, the variant maker, the
    policy-document cache and the coalescers are made once, for the app, the fast path
    and the file route alike. The key cannot be ``env`` itself: the Workers SDK wraps
    ``env`` in a new object for every event.
    """
    global _gateway
    if _gateway is None:
        try:
            _gateway = assemble(ports_from_env(env))
        except (ConfigError, SigningConfigError, SigningIdentityError) as exc:
            # The message names the variable, never its value.
            raise ApiError(503, "server_misconfigured", str(exc)) from exc
        for warning in _gateway.readiness.warnings():  # also on /readyz
            log.warning(warning)
    return _gateway


def ports_from_env(env: Any) -> Ports:
    """The Worker's ports: its bindings, vars and secrets. The settings are read as the
    local runtime reads its environment (:meth:`Settings.from_mapping`), off ``env``."""
    settings = Settings.from_mapping(EnvVars(env))
    transformer = transformer_from_env(env)
    return Ports(
        settings=settings,
        kv=WorkersKV(env.KV),
        objects=WorkersR2(env.IMAGES),
        model=WorkersImageModel(env.AI),
        signer=signer_from_env(env),
        limiter=WorkersRateLimiter(env),
        ledger=WorkersLedger(env.BUDGETS),
        moderator=GuardModerator(WorkersAIRunner(env.AI)),
        image_moderator=ScoutImageModerator(WorkersAIRunner(env.AI)),
        admin_token=admin_token_from(env_text(env, "ADMIN_TOKEN")),
        coalescer=coalescer_from_env(env),
        jobs=jobs_from_env(env),
        catalog=catalog_from_env(env),
        usage_events=usage_events_from_env(env),
        idempotency=idempotency_from_env(env),
        transformer=transformer,
        variant_coalescer=variant_coalescer(env),
        edge_cache=WorkersEdgeCache(),
        signatures=WebCryptoSignatures(),
        jwks=FetchJwksFetcher(),
        claim_signer=claim_signer_from_env(env) if settings.c2pa else None,
        timestamper=timestamper(settings),
        provenance=provenance_from_env(env),
        renderer=transformer,
    )


def timestamper(settings: Settings) -> FetchTimestamper | None:
    """``C2PA_TIMESTAMP_URL``'s authority, over the Worker's ``fetch``."""
    url = settings.c2pa_timestamp_url
    return None if url is None or not settings.c2pa else FetchTimestamper(url)


def catalog_from_env(env: Any) -> WorkersCatalog | None:
    """Listings when the CATALOG objects are bound (else they answer 501)."""
    namespace = getattr(env, "CATALOG", None)
    return None if namespace is None else WorkersCatalog(namespace)


def jobs_from_env(env: Any) -> JobPorts | None:
    """Async jobs when both the JOBS objects and the JOB_QUEUE producer are bound."""
    namespace, queue = getattr(env, "JOBS", None), getattr(env, "JOB_QUEUE", None)
    if namespace is None or queue is None:
        return None
    return JobPorts(WorkersJobStore(namespace), WorkersQueue(queue), FetchPoster())


def coalescer_from_env(env: Any) -> Coalescer:
    """Through the key's Durable Object when the COALESCER binding exists; else none at all.

    Not the in-process coalescer the local runtime uses: on workerd a waiter resumed by
    another request's future answers from that request's I/O context (see
    :mod:`fluxgate.edge.bindings.coalescer_object`), so without the binding each request generates
    alone."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return NoCoalescing()
    return DurableCoalescer(
        namespace, encode=GenerationRecord.to_json, decode=GenerationRecord.from_json
    )


def variant_coalescer(env: Any) -> Coalescer | None:
    """One transformation per variant in flight, across isolates: the variant's Durable
    Object (``variant:<key>`` in the ``COALESCER`` namespace) elects the first download
    leader and holds the others until it reports. Only a download that finds no variant
    in R2 asks (once per variant, ever, barring failures), and a Durable Object request
    costs a fraction of a billed transformation; the leader's R2 write is what the
    waiters then serve. Without the binding, ``None``: within the isolate."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return None
    return DurableCoalescer(
        namespace,
        encode=lambda made: "made" if made else "gone",
        decode=lambda raw: raw == "made",
    )


def connecting_ip(request: Any) -> str:
    """The client, as Cloudflare names it: ``CF-Connecting-IP`` is set by the edge (a value
    a client sends is replaced), so it is safe to throttle by."""
    return str(request.headers.get("cf-connecting-ip") or "unknown")


def gateway_of(request: Any) -> Gateway:
    """The app's gateway resolver (``create_app``): the isolate's, from the ``env`` the
    ASGI bridge put in the request's scope."""
    return gateway_from_env(request.scope["env"])
