"""The FastAPI app on Workers, wired to the bindings of ``env``."""

from __future__ import annotations

from typing import Any

from ..app import create_app
from ..async_jobs import Jobs
from ..errors import ApiError
from ..moderation import GuardModerator
from ..pipeline import Gateway, GenerationRecord, Outcome, build_controls
from ..settings import ConfigError, Settings
from ..signing import SigningConfigError
from .ai import WorkersAIRunner, WorkersImageModel
from .coalesce import DurableCoalescer
from .config import env_settings, env_text, signer_from_env
from .jobs import FetchPoster, WorkersJobStore, WorkersQueue
from .kv import WorkersKV
from .ledger import WorkersLedger
from .r2 import WorkersR2
from .ratelimit import WorkersRateLimiter

_gateways: dict[int, Gateway] = {}
_app: Any = None


def gateway_from_env(env: Any) -> Gateway:
    """One gateway per isolate: bindings and settings do not change between requests."""
    cached = _gateways.get(id(env))
    if cached is not None:
        return cached
    try:
        settings = Settings.from_mapping(env_settings(env))
        kv = WorkersKV(env.KV)
        gateway = Gateway(
            settings=settings,
            kv=kv,
            objects=WorkersR2(env.IMAGES),
            model=WorkersImageModel(env.AI),
            signer=signer_from_env(env),
            controls=build_controls(
                settings,
                kv,
                limiter=WorkersRateLimiter(env),
                ledger=WorkersLedger(env.BUDGETS),
                moderator=GuardModerator(WorkersAIRunner(env.AI)),
            ),
            admin_token=env_text(env, "ADMIN_TOKEN"),
            coalescer=coalescer_from_env(env),
        )
    except (ConfigError, SigningConfigError) as exc:
        # The message names the variable, never its value.
        raise ApiError(503, "server_misconfigured", str(exc)) from exc
    gateway.jobs = jobs_from_env(env, gateway)
    _gateways.clear()
    _gateways[id(env)] = gateway
    return gateway


def jobs_from_env(env: Any, gateway: Gateway) -> Jobs | None:
    """Async jobs when both the JOBS objects and the JOB_QUEUE producer are bound."""
    namespace, queue = getattr(env, "JOBS", None), getattr(env, "JOB_QUEUE", None)
    if namespace is None or queue is None:
        return None
    settings = gateway.settings
    return Jobs(
        gateway,
        WorkersJobStore(namespace),
        WorkersQueue(queue),
        FetchPoster(),
        allow_loopback=settings.webhook_allow_loopback,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        max_attempts=settings.job_max_attempts,
        webhook_max_attempts=settings.webhook_max_attempts,
    )


def coalescer_from_env(env: Any) -> Any:
    """Across isolates when the COALESCER binding exists; else within the isolate."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return None
    return DurableCoalescer(
        namespace,
        encode=lambda outcome: outcome.record.to_json(),
        decode=lambda raw: Outcome(GenerationRecord.from_json(raw), "MISS"),
    )


def app() -> Any:
    global _app
    if _app is None:
        _app = create_app(lambda request: gateway_from_env(request.scope["env"]))
    return _app


async def handle(request: Any, env: Any, ctx: Any) -> Any:
    from workers import asgi

    return await asgi.fetch(app(), request, env, ctx)
