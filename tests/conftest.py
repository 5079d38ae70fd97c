"""Fixtures for the API tests, on both runtimes.

A test that asks for ``client`` (and ``ai``, ``guard``, ``scout``, ``clock``, ``auth``,
``admin``, ``storage``, ``jobs``, ``signer``, ``audit_lines``, ``async_client``) runs twice:
``[local]`` against the FastAPI app on the local runtime's embedded stores, in process, and
``[worker]`` against the Worker as deployed, on real workerd (``tests/runtimes.py``).
Each of those fixtures is the same thing on both runtimes: a double in process, or what is
beside the Worker on workerd (the AI stand-in, Miniflare's stores) through the stack's
control port. A test that reaches into the in-process objects
(``gateway``, ``kv``, ``objects``, ``ledger``, ``coalescer``, ``catalog``,
``make_runtime``) is white-box and runs on the local runtime only, and so does one that asks
for a fixture workerd cannot offer (``LOCAL_ONLY_FIXTURES``); any other black-box test that
cannot run on the Worker says why with ``@pytest.mark.local_only(reason=...)``.

Configuration is declared, never changed mid-test: ``@pytest.mark.settings(field=value)``
(merged from module to test) configures both runtimes, the Worker on workerd through its
``[vars]``; ``@pytest.mark.secrets(NAME=value)`` does the same for the secrets, where
``None`` leaves one unset.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient

from fluxgate.api.app import create_app
from fluxgate.delivery.signing import UrlSigner, parse_signing_keys
from fluxgate.listings.usage_events import BLOBS, DOUBLES
from fluxgate.local.answers_sqlite import SqliteIdempotency
from fluxgate.local.catalog_sqlite import SqliteCatalog
from fluxgate.local.jobs_sqlite import QueueWorker, SqliteQueue
from fluxgate.local.kv_sqlite import SqliteKV
from fluxgate.local.ledger_sqlite import SqliteLedger
from fluxgate.local.objects_dir import DirectoryObjects
from fluxgate.local.pillow_transform import PillowTransformer
from fluxgate.local.runtime import LocalRuntime, local_jobs
from fluxgate.local.usage_sqlite import SqliteUsageEvents
from fluxgate.local.window_limiter import WindowRateLimiter
from fluxgate.model.coalesce import Coalescer, InflightCoalescer
from fluxgate.model.port import MultipartImageModel
from fluxgate.policy.output_moderation import ScoutImageModerator
from fluxgate.policy.prompt_moderation import GuardModerator
from fluxgate.service.gateway import Gateway, JobPorts, Ports
from fluxgate.service.settings import Settings

from .doubles import (
    CountingTransformer,
    FakeGuardAI,
    FakeScoutAI,
    FlakyKV,
    FlakyObjects,
    HeldLedger,
    ScriptedAI,
)
from .runtimes import (
    Workerd,
    WorkerdAI,
    WorkerdClock,
    WorkerdGuard,
    WorkerdJobs,
    WorkerdPool,
    WorkerdScout,
    WorkerdStorage,
    workerd_prerequisites,
)

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SIGNING_KEYS = "k2=" + "s" * 40 + ",k1=" + "o" * 40
SECRETS: dict[str, str | None] = {"ADMIN_TOKEN": ADMIN_TOKEN, "URL_SIGNING_KEYS": SIGNING_KEYS}

# In-process objects with no counterpart on workerd: a test that asks for one of these is
# white-box, and runs on the local runtime only.
IN_PROCESS = frozenset(
    {"gateway", "kv", "objects", "ledger", "coalescer", "catalog", "make_runtime"}
)
# Black-box fixtures that workerd cannot offer from outside: a test asking for one runs on
# the local runtime only, for this reason.
LOCAL_ONLY_FIXTURES = {
    "images": "counts or fails the image transformer; Miniflare's Images binding does neither",
    "usage_events": "reads Analytics Engine data points back; Miniflare's dataset keeps none",
}
RUNTIMES = ("local", "worker")
# A report's user property: how the Worker's isolate died during the test (one per way).
ISOLATE_CRASH = "worker_isolate_crash"
ISOLATE_CHECKED = "worker_isolate_checked"  # the test ran on a stack that was checked
# Why a black-box test runs on the local runtime only (``local_only(reason=...)``): what it
# needs is something workerd lets nobody do from outside.
MOVES_CLOCK = "moves the clock; workerd's cannot be moved from outside"
FAILS_STORE = "makes KV or R2 fail; workerd's bindings cannot be made to fail from outside"
HOLDS_QUEUE = "pauses or drains the job queue's consumer; workerd gives no handle on it"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "local_only(reason): a black-box test that cannot run on workerd"
    )
    config.addinivalue_line(
        "markers", "settings(**fields): settings for both runtimes (Settings field names)"
    )
    config.addinivalue_line(
        "markers", "secrets(**values): ADMIN_TOKEN / URL_SIGNING_KEYS for both (None: unset)"
    )
    config.addinivalue_line(
        "markers", "unbound(*tables): both runtimes without these bindings ('images')"
    )
    config.addinivalue_line(
        "markers",
        "rate_limits(rules): the policy's rate-limit rules {name: {limit, period}}, enforced"
        " by both runtimes (on workerd, one RATE_LIMIT_<NAME> binding each)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "runtime" not in metafunc.fixturenames:
        return
    local_only = metafunc.definition.get_closest_marker("local_only")
    white_box = (IN_PROCESS | LOCAL_ONLY_FIXTURES.keys()) & set(metafunc.fixturenames)
    runtimes = ("local",) if local_only or white_box else RUNTIMES
    metafunc.parametrize("runtime", runtimes, indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tag each API test with its runtime, for the summary below."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "runtime" in callspec.params:
            item.user_properties.append(("runtime", callspec.params["runtime"]))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many API tests ran on each runtime, and what was skipped on the Worker."""
    counts: Counter[tuple[str, str]] = Counter()
    skipped: list[str] = []
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            runtime = dict(getattr(report, "user_properties", ())).get("runtime")
            if runtime is None or (outcome == "passed" and report.when != "call"):
                continue
            counts[(runtime, outcome)] += 1
            if runtime == "worker" and outcome == "skipped":
                skipped.append(f"{report.nodeid}: {report.longrepr[-1]}")
    if not counts:
        return
    terminalreporter.section("API tests per runtime (worker: the Worker on workerd)")
    for runtime in RUNTIMES:
        parts = ", ".join(
            f"{counts[(runtime, o)]} {o}"
            for o in ("passed", "failed", "skipped", "error")
            if counts[(runtime, o)]
        )
        terminalreporter.write_line(f"{runtime}: {parts or 'none'}")
    for line in skipped:
        terminalreporter.write_line(f"skipped on the Worker: {line}")
    crashes: list[str] = []
    checked: set[str] = set()
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "teardown":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name == ISOLATE_CRASH:
                    crashes.append(f"{report.nodeid}: {value}")
                elif name == ISOLATE_CHECKED:
                    checked.add(report.nodeid)
    if checked:
        terminalreporter.write_line(
            f"Worker isolate crashes: {len(crashes) or 'none'} "
            f"(checked after each of {len(checked)} tests on the tests' workerd stacks)"
        )
    for line in crashes:
        terminalreporter.write_line(f"isolate crashed: {line}")
    shots = sorted(
        {
            str(value)
            for report in terminalreporter.stats.get("passed", [])
            for name, value in getattr(report, "user_properties", ())
            if name == "screenshot"
        }
    )
    if shots:
        terminalreporter.section("console screenshots")
        terminalreporter.write_line(f"folder: {Path(shots[0]).parent}")
        for shot in shots:
            terminalreporter.write_line(shot)


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def workerd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerdPool]:
    # Policy changes through the admin API must be seen at once, as the local gateway's
    # policy store (cache_seconds=0) sees them.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # all processes'
    pool = WorkerdPool(
        tmp_path_factory.mktemp("workerd"),
        SECRETS,
        {"POLICY_CACHE_SECONDS": 0},
        snapshots=shared / "workerd-pool-snapshot",
    )
    yield pool
    crashes = pool.close()
    if crashes:  # e.g. in work a test left running after its last answer
        pytest.fail("the Worker's isolate crashed on workerd:\n" + "\n".join(crashes))


def setting_vars(settings: Settings) -> dict[str, Any]:
    """The settings that differ from the defaults, as the Worker's [vars] spell them."""
    changed = settings.model_dump(exclude_defaults=True, mode="json")
    return {name.upper(): value for name, value in changed.items()}


@pytest.fixture
def workerd(
    request: pytest.FixtureRequest,
    workerd_pool: WorkerdPool,
    settings: Settings,
    secrets: dict[str, str | None],
    unbound: tuple[str, ...],
) -> Iterator[Workerd]:
    """The Worker on workerd for this test's settings and secrets, with empty stores.

    The test fails if the Worker's isolate died while it ran (:class:`IsolateHistory`: a
    fatal error on the console, workerd restarting, or a new isolate replacing the one
    that served before), even if every answer looked right."""
    reason = workerd_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Worker cannot run on workerd in CI: {reason}")
        pytest.skip(f"the Worker cannot run on workerd here: {reason}")
    bindings = {
        f"RATE_LIMIT_{name.upper()}": (rule["limit"], rule["period"])
        for name, rule in _rate_limit_rules(request).items()
    }
    stack = workerd_pool.get(setting_vars(settings), secrets, unbound, bindings)
    stack.reset()
    before = stack.isolates()
    request.node.user_properties.append((ISOLATE_CHECKED, True))
    yield stack
    crashes = stack.isolates().crashes_since(before)
    if crashes:  # the answers may have looked right, but a request killed the isolate
        for crash in crashes:
            request.node.user_properties.append((ISOLATE_CRASH, crash))
        workerd_pool.discard(stack)
        pytest.fail("the Worker's isolate crashed during this test:\n" + "\n".join(crashes))


class Clock:
    """Wall time that tests move by hand; shared by the gateway and the local KV."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock(request: pytest.FixtureRequest) -> Clock | WorkerdClock:
    """The runtime's wall clock; in process a test may move it (``advance``), on workerd
    it is real time."""
    if _runtime(request) == "worker":
        return WorkerdClock()
    return Clock()


@pytest.fixture
def ai(request: pytest.FixtureRequest) -> ScriptedAI | WorkerdAI:
    if _runtime(request) == "worker":
        return WorkerdAI(request.getfixturevalue("workerd"))
    return ScriptedAI()


def _runtime(request: pytest.FixtureRequest) -> str:
    """The runtime of the test being set up ("local" for tests that are not parametrized)."""
    if "runtime" in request.fixturenames:
        return str(request.getfixturevalue("runtime"))
    return "local"


@pytest.fixture
def kv(tmp_path: Path, clock: Clock) -> Iterator[FlakyKV]:
    store = SqliteKV(tmp_path / "kv.sqlite3", clock=clock)
    yield FlakyKV(store)
    store.close()


@pytest.fixture
def objects(tmp_path: Path) -> FlakyObjects:
    return FlakyObjects(DirectoryObjects(tmp_path / "objects"))


def _marked(request: pytest.FixtureRequest, name: str) -> dict[str, Any]:
    """The keyword arguments of every ``name`` marker, module first, the test's last."""
    values: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers(name))):
        values.update(marker.kwargs)
    return values


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    return Settings(**_marked(request, "settings"))


@pytest.fixture
def secrets(request: pytest.FixtureRequest) -> dict[str, str | None]:
    return {**SECRETS, **_marked(request, "secrets")}


@pytest.fixture
def unbound(request: pytest.FixtureRequest) -> tuple[str, ...]:
    """The wrangler.toml tables this test runs without (``@pytest.mark.unbound("images")``):
    on workerd a configuration without them, locally the matching port left out."""
    return tuple(
        sorted({name for marker in request.node.iter_markers("unbound") for name in marker.args})
    )


@pytest.fixture
def images() -> CountingTransformer:
    """What makes variants in process: Pillow, counting the images it made (``made``)."""
    return CountingTransformer(PillowTransformer())


@pytest.fixture
def signer(secrets: dict[str, str | None]) -> UrlSigner:
    """A signer with the runtime's URL-signing keys (the first signs, all verify)."""
    return UrlSigner(parse_signing_keys(secrets["URL_SIGNING_KEYS"] or ""))


@pytest.fixture
def guard(request: pytest.FixtureRequest) -> FakeGuardAI | WorkerdGuard:
    """Llama Guard behind the AI binding: which words are unsafe, failures, calls."""
    if _runtime(request) == "worker":
        return WorkerdGuard(request.getfixturevalue("workerd"))
    return FakeGuardAI()


@pytest.fixture
def scout(request: pytest.FixtureRequest) -> FakeScoutAI | WorkerdScout:
    """Llama 4 Scout, the output classifier, behind the AI binding: scripted verdicts and
    failures, the answer's form, its calls and the images it saw."""
    if _runtime(request) == "worker":
        return WorkerdScout(request.getfixturevalue("workerd"))
    return FakeScoutAI()


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
    ai: ScriptedAI,
    guard: FakeGuardAI,
    scout: FakeScoutAI,
    ledger: HeldLedger,
    coalescer: Coalescer,
    catalog: SqliteCatalog,
    usage_event_store: SqliteUsageEvents,
    idempotency_store: SqliteIdempotency,
    clock: Clock,
    secrets: dict[str, str | None],
    images: CountingTransformer,
    unbound: tuple[str, ...],
) -> Ports:
    """The local runtime's ports, made of this test's doubles."""
    if "policy_cache_seconds" not in _marked(request, "settings"):
        # Tests change the policy through the admin API and expect it at once.
        settings = settings.model_copy(update={"policy_cache_seconds": 0})
    return Ports(
        settings=settings,
        kv=kv,
        objects=objects,
        model=MultipartImageModel(ai),
        signer=UrlSigner(parse_signing_keys(secrets["URL_SIGNING_KEYS"] or "")),
        limiter=WindowRateLimiter(clock),
        ledger=ledger,
        moderator=GuardModerator(guard),
        image_moderator=ScoutImageModerator(scout),
        admin_token=secrets["ADMIN_TOKEN"],
        coalescer=coalescer,
        jobs=local_jobs(tmp_path),
        catalog=catalog,
        usage_events=usage_event_store,
        idempotency=idempotency_store,
        transformer=None if "images" in unbound else images,
        clock=clock,
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


@pytest.fixture
def client(runtime: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    if runtime == "worker":
        stack: Workerd = request.getfixturevalue("workerd")
        with httpx.Client(base_url=stack.base, timeout=60) as c:
            yield c
        return
    runtime: LocalRuntime = request.getfixturevalue("local_runtime")
    gateway = runtime.gateway
    app = create_app(lambda _request: gateway, lifespan=lambda _app: runtime.background_jobs())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def async_client(runtime: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Opens an ``AsyncClient`` (of ``httpx``, or of a module shaped like it) on the runtime
    under test, for concurrent requests: over ASGI in process, over real HTTP to workerd."""
    if runtime == "worker":
        base = request.getfixturevalue("workerd").base

        def over_http(module: Any = httpx) -> Any:
            return module.AsyncClient(base_url=base, timeout=60)

        return over_http
    gateway: Gateway = request.getfixturevalue("gateway")

    def in_process(module: Any = httpx) -> Any:
        transport = module.ASGITransport(app=create_app(lambda _request: gateway))
        return module.AsyncClient(transport=transport, base_url="http://fluxgate")

    return in_process


class LocalStorage:
    """The local KV and object stores seen from outside (``WorkerdStorage`` on workerd)."""

    def __init__(self, kv: FlakyKV, objects: FlakyObjects) -> None:
        self._kv = kv
        self._objects = objects

    def fail(
        self,
        *,
        kv_reads: tuple[str, ...] = (),
        kv_writes: tuple[str, ...] = (),
        object_writes: bool = False,
    ) -> None:
        self._kv.fail_get_prefixes = tuple(kv_reads)
        self._kv.fail_put_prefixes = tuple(kv_writes)
        self._objects.fail_puts = object_writes

    def kv_dump(self) -> list[dict[str, Any]]:
        rows = self._kv.inner._db.execute("SELECT key, value, metadata FROM kv").fetchall()
        return [{"key": key, "value": value, "metadata": meta} for key, value, meta in rows]

    def object_exists(self, key: str) -> bool:
        return anyio.run(self._objects.head, key) is not None

    def delete_object(self, key: str) -> None:
        anyio.run(self._objects.delete, key)

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, sorted (``WorkerdStorage`` lists R2)."""
        root = self._objects.inner.root
        keys = (
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not path.name.endswith(".meta.json")
        )
        return sorted(key for key in keys if key.startswith(prefix))


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> LocalStorage | WorkerdStorage:
    """The runtime's KV namespace and object bucket: every KV entry as stored, and objects
    looked up or deleted behind the gateway's back; in process also outages
    (``fail(kv_reads=prefixes, kv_writes=prefixes, object_writes=True)``)."""
    if _runtime(request) == "worker":
        return WorkerdStorage(request.getfixturevalue("workerd"))
    return LocalStorage(request.getfixturevalue("kv"), request.getfixturevalue("objects"))


class LocalJobs:
    """The local job queue and job records (``WorkerdJobs`` on workerd)."""

    def __init__(self, ports: JobPorts, worker: QueueWorker, client: TestClient) -> None:
        assert isinstance(ports.queue, SqliteQueue)
        self._queue = ports.queue
        self._store = ports.store
        self._worker = worker
        self._portal = client.portal

    def send(self, message: dict[str, Any]) -> None:
        self._portal.call(self._queue.send, message)

    def pause(self) -> None:
        self._portal.call(self._worker.stop)

    def resume(self) -> None:
        async def start() -> None:
            self._worker.start()

        self._portal.call(start)

    def deliver(self, message: dict[str, Any]) -> None:
        """The consumer's delivery of ``message`` (a redelivery, say), once handled."""
        self.send(message)
        self.drain()

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.pending():
            assert time.monotonic() < deadline, "the job queue did not drain"
            time.sleep(0.02)

    def record(self, job_id: str) -> dict[str, Any] | None:
        job = self._portal.call(self._store.get, job_id)
        return None if job is None else job.as_dict()


@pytest.fixture
def jobs(client: httpx.Client, request: pytest.FixtureRequest) -> LocalJobs | WorkerdJobs:
    """The runtime's job queue (send a message, or have one delivered and handled; in
    process also pause and resume its consumer, wait until it is drained) and its job
    records, as the gateway stores them."""
    if _runtime(request) == "worker":
        return WorkerdJobs(request.getfixturevalue("workerd"))
    runtime: LocalRuntime = request.getfixturevalue("local_runtime")
    ports: Ports = request.getfixturevalue("ports")
    assert ports.jobs is not None and runtime.worker is not None
    return LocalJobs(ports.jobs, runtime.worker, client)  # type: ignore[arg-type]


def _json_log_lines(
    kind: str, caplog: pytest.LogCaptureFixture, runtime: str, request: pytest.FixtureRequest
) -> Callable[[], list[dict[str, Any]]]:
    """The JSON lines of one ``type`` (``audit``, ``access``) written during the test: from
    the log records in process (logger ``fluxgate.<type>``), from the Worker's console
    (what Workers Logs collects) on workerd."""
    if runtime == "worker":
        stack: Workerd = request.getfixturevalue("workerd")

        def from_console() -> list[dict[str, Any]]:
            console = stack.log_since_reset().splitlines()
            lines = [json.loads(x) for x in console if x.startswith('{"time"')]
            return [line for line in lines if line.get("type") == kind]

        return from_console
    logger = f"fluxgate.{kind}"
    caplog.set_level(logging.INFO, logger=logger)

    def from_records() -> list[dict[str, Any]]:
        return [json.loads(r.message) for r in caplog.records if r.name == logger]

    return from_records


@pytest.fixture
def audit_lines(
    caplog: pytest.LogCaptureFixture, runtime: str, request: pytest.FixtureRequest
) -> Callable[[], list[dict[str, Any]]]:
    return _json_log_lines("audit", caplog, runtime, request)


@pytest.fixture
def access_lines(
    caplog: pytest.LogCaptureFixture, runtime: str, request: pytest.FixtureRequest
) -> Callable[[], list[dict[str, Any]]]:
    return _json_log_lines("access", caplog, runtime, request)


@pytest.fixture
def usage_event_store(tmp_path: Path) -> Iterator[SqliteUsageEvents]:
    store = SqliteUsageEvents(tmp_path / "usage_events.sqlite3")
    yield store
    store.close()


def usage_event(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One usage event: the names of ``fluxgate.listings.usage_events``'s layout, blobs as text
    (``""`` for none), doubles as floats (as Analytics Engine would give them back)."""
    blobs = {name: "" if fields[name] is None else str(fields[name]) for name in BLOBS}
    return {**blobs, **{name: float(fields[name]) for name in DOUBLES}}


class LocalUsageEvents:
    """The local usage-event table, read from its SQLite file."""

    def __init__(self, path: Path, store: SqliteUsageEvents) -> None:
        self._path = path
        self._store = store

    def events(self) -> list[dict[str, Any]]:
        self._store.flush()  # recording returns before the writer thread has written
        with closing(sqlite3.connect(self._path)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM usage_events ORDER BY rowid").fetchall()
        return [usage_event(dict(row)) for row in rows]

    def fail(self) -> None:
        """Every later write fails (the store is closed under the gateway)."""
        self._store.close()


@pytest.fixture
def usage_events(usage_event_store: SqliteUsageEvents, tmp_path: Path) -> LocalUsageEvents:
    """The usage events the local runtime recorded (``events()``: one dict per event, the
    fields of ``fluxgate.listings.usage_events``), and ``fail()``: every later write fails."""
    return LocalUsageEvents(tmp_path / "usage_events.sqlite3", usage_event_store)


def origin(client: httpx.Client) -> str:
    """The origin the runtime under test answers on (signed URLs and Locations use it)."""
    return str(client.base_url).rstrip("/")


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def new_key(client: httpx.Client, name: str = "test", **fields: object) -> dict[str, str]:
    response = client.post(
        "/v1/admin/keys",
        json={"name": name, **fields},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


@pytest.fixture
def auth(client: httpx.Client) -> dict[str, str]:
    return new_key(client)


def _rate_limit_rules(request: pytest.FixtureRequest) -> dict[str, dict[str, int]]:
    marker = request.node.get_closest_marker("rate_limits")
    return dict(marker.args[0]) if marker else {}


@pytest.fixture
def rate_limit_rules(client: httpx.Client, request: pytest.FixtureRequest) -> Any:
    """Store a policy document with the test's ``@pytest.mark.rate_limits(rules)``.

    Locally the window limiter follows the document. On Workers each rule is a Rate Limiting
    binding, ``RATE_LIMIT_<NAME>``, whose limit is fixed by ``wrangler.toml``: the deployer
    declares one per rule, and the test's stack on workerd is started with the same.
    """
    rules = _rate_limit_rules(request)
    assert rules, "mark the test with @pytest.mark.rate_limits({name: {limit, period}})"

    def store(**document: object) -> dict[str, object]:
        return put_policy(client, rate_limits=rules, **document)

    return store


def just_now(clock: Callable[[], float], plus: int = 0) -> range:
    """The whole seconds a timestamp the server set just now (plus ``plus``) may hold:
    on workerd the clock runs in real time, so a second may tick between the
    server's reading and the test's."""
    now = int(clock())
    return range(now - 1 + plus, now + 1 + plus)


def put_policy(client: httpx.Client, **document: object) -> dict[str, object]:
    """Store a policy document (version = current + 1 unless given) through the admin API."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    current = client.get("/v1/admin/policy", headers=admin).json()
    body = {"version": current["version"] + 1, **document}
    response = client.put("/v1/admin/policy", json=body, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()
