"""The local runtime in process, made of the test's doubles: its ports and its gateway.

Everything here is white-box: a test that asks for one of these fixtures reaches into the
in-process runtime, which has no counterpart on workerd, and runs locally
(``runtimes("local")``; the list is ``runtimes.IN_PROCESS``). The black-box fixtures the
ports are made of (``ai``, ``guard``, ``scout``, ``clock``) are the in-process side of their
doubles here, :func:`in_process` checks it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from fluxgate.delivery.signing import UrlSigner, parse_signing_keys
from fluxgate.local.answers_sqlite import SqliteIdempotency
from fluxgate.local.c2pa_signer import LocalClaimSigner
from fluxgate.local.catalog_sqlite import SqliteCatalog
from fluxgate.local.id_token_crypto import CryptographySignatures
from fluxgate.local.jwks_http import HttpxJwksFetcher
from fluxgate.local.ledger_sqlite import SqliteLedger
from fluxgate.local.provenance_sqlite import SqliteProvenance
from fluxgate.local.runtime import LocalRuntime, local_jobs
from fluxgate.local.usage_sqlite import SqliteUsageEvents
from fluxgate.local.window_limiter import WindowRateLimiter
from fluxgate.model.coalesce import Coalescer, InflightCoalescer
from fluxgate.model.port import MultipartImageModel
from fluxgate.policy.output_moderation import ScoutImageModerator
from fluxgate.policy.prompt_moderation import GuardModerator
from fluxgate.service.gateway import Gateway, Ports
from fluxgate.service.settings import Settings

from .clock import Clock, ClockDouble
from .config import marked
from .guard import FakeGuardAI, GuardDouble
from .model import ModelDouble, ScriptedAI
from .scout import FakeScoutAI, ScoutDouble
from .storage import FlakyKV, FlakyObjects
from .transformer import CountingTransformer

T = TypeVar("T")


def in_process(double: object, kind: type[T]) -> T:
    """``double`` as its in-process implementation ``kind``: the ports exist only in
    process, so a double given to them is never the one on workerd."""
    assert isinstance(double, kind), f"{double!r} is not the in-process {kind.__name__}"
    return double


class HeldLedger:
    """The budget ledger, whose reservations can be held until a gate opens (``hold()``
    returns the gate); otherwise it is the ledger itself."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._gate: asyncio.Event | None = None

    def hold(self) -> asyncio.Event:
        self._gate = asyncio.Event()
        return self._gate

    async def reserve(self, *args: Any, **kwargs: Any) -> Any:
        if self._gate is not None:
            await self._gate.wait()
        return await self.inner.reserve(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[HeldLedger]:
    store = SqliteLedger(tmp_path / "budget.sqlite3")
    yield HeldLedger(store)
    store.close()


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[SqliteCatalog]:
    """The listings' catalog (the ``CATALOG`` Durable Objects on the Worker)."""
    store = SqliteCatalog(tmp_path / "catalog.sqlite3")
    yield store
    store.close()


@pytest.fixture
def idempotency_store(tmp_path: Path) -> Iterator[SqliteIdempotency]:
    """Idempotency-Key answers (the ``IDEMPOTENCY`` Durable Objects on the Worker)."""
    store = SqliteIdempotency(tmp_path / "idempotency.sqlite3")
    yield store
    store.close()


@pytest.fixture
def coalescer() -> Coalescer:
    """The in-process coalescer (a test may parametrize ``coalescer`` to replace it)."""
    return InflightCoalescer()


@pytest.fixture
def ports(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    settings: Settings,
    kv: FlakyKV,
    objects: FlakyObjects,
    ai: ModelDouble,
    guard: GuardDouble,
    scout: ScoutDouble,
    ledger: HeldLedger,
    coalescer: Coalescer,
    catalog: SqliteCatalog,
    usage_event_store: SqliteUsageEvents,
    idempotency_store: SqliteIdempotency,
    clock: ClockDouble,
    secrets: dict[str, str | None],
    images: CountingTransformer,
    unbound: tuple[str, ...],
) -> Ports:
    """The local runtime's ports, made of this test's doubles."""
    if "policy_cache_seconds" not in marked(request, "settings"):
        # Tests change the policy through the admin API and expect it at once.
        settings = settings.model_copy(update={"policy_cache_seconds": 0})
    local_clock = in_process(clock, Clock)
    key, chain = secrets.get("C2PA_SIGNING_KEY"), secrets.get("C2PA_CERTIFICATE_CHAIN")
    claim_signer = LocalClaimSigner(key, chain, local_clock) if key and chain else None
    return Ports(
        settings=settings,
        kv=kv,
        objects=objects,
        model=MultipartImageModel(in_process(ai, ScriptedAI)),
        signer=UrlSigner(parse_signing_keys(secrets["URL_SIGNING_KEYS"] or "")),
        limiter=WindowRateLimiter(local_clock),
        ledger=ledger,
        moderator=GuardModerator(in_process(guard, FakeGuardAI)),
        image_moderator=ScoutImageModerator(in_process(scout, FakeScoutAI)),
        admin_token=secrets["ADMIN_TOKEN"],
        coalescer=coalescer,
        jobs=local_jobs(tmp_path),
        catalog=catalog,
        usage_events=usage_event_store,
        idempotency=idempotency_store,
        transformer=None if "images" in unbound else images,
        signatures=CryptographySignatures(),
        jwks=HttpxJwksFetcher(allow_loopback=settings.issuer_allow_loopback),
        claim_signer=claim_signer if settings.c2pa else None,
        provenance=SqliteProvenance(tmp_path / "provenance.sqlite3"),
        renderer=None if "images" in unbound else images,
        clock=local_clock,
    )


@pytest.fixture
def make_runtime(ports: Ports) -> Callable[..., LocalRuntime]:
    """The gateway factory: a local runtime on this test's ports, with some replaced
    (``make_runtime(model=Broken())``)."""

    def make(**parts: Any) -> LocalRuntime:
        return LocalRuntime.of(dataclasses.replace(ports, **parts))

    return make


@pytest.fixture
def local_runtime(make_runtime: Callable[..., LocalRuntime]) -> LocalRuntime:
    return make_runtime()


@pytest.fixture
def gateway(local_runtime: LocalRuntime) -> Gateway:
    return local_runtime.gateway
