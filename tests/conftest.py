from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fluxgate import FLUX_MODEL_ID
from fluxgate.app import create_app
from fluxgate.local.kv_sqlite import SqliteKV
from fluxgate.local.ledger import SqliteLedger
from fluxgate.local.objects_dir import DirectoryObjects
from fluxgate.local.ratelimit import WindowRateLimiter
from fluxgate.local.runtime import attach_jobs, background_jobs
from fluxgate.model import MultipartImageModel
from fluxgate.moderation import GuardModerator
from fluxgate.pipeline import Gateway, build_controls
from fluxgate.policy_store import PolicyStore
from fluxgate.settings import Settings
from fluxgate.signing import UrlSigner, parse_signing_keys

from .doubles import FakeGuardAI, FlakyKV, FlakyObjects, ScriptedAI

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
SIGNING_KEYS = "k2=" + "s" * 40 + ",k1=" + "o" * 40


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
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ai() -> ScriptedAI:
    return ScriptedAI()


@pytest.fixture
def kv(tmp_path: Path, clock: Clock) -> Iterator[FlakyKV]:
    store = SqliteKV(tmp_path / "kv.sqlite3", clock=clock)
    yield FlakyKV(store)
    store.close()


@pytest.fixture
def objects(tmp_path: Path) -> FlakyObjects:
    return FlakyObjects(DirectoryObjects(tmp_path / "objects"))


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def guard() -> FakeGuardAI:
    return FakeGuardAI()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    store = SqliteLedger(tmp_path / "budget.sqlite3")
    yield store
    store.close()


@pytest.fixture
def gateway(
    tmp_path: Path,
    settings: Settings,
    kv: FlakyKV,
    objects: FlakyObjects,
    ai: ScriptedAI,
    guard: FakeGuardAI,
    ledger: SqliteLedger,
    clock: Clock,
) -> Gateway:
    controls = build_controls(
        settings,
        kv,
        limiter=WindowRateLimiter(clock),
        ledger=ledger,
        moderator=GuardModerator(guard),
        clock=clock,
    )
    # Tests change the policy through the admin API and expect it at once.
    controls.policies = PolicyStore(kv, settings.default_policy(), cache_seconds=0)
    gateway = Gateway(
        settings=settings,
        kv=kv,
        objects=objects,
        model=MultipartImageModel(ai, model_id=FLUX_MODEL_ID),
        signer=UrlSigner(parse_signing_keys(SIGNING_KEYS)),
        controls=controls,
        admin_token=ADMIN_TOKEN,
        clock=clock,
    )
    attach_jobs(gateway, tmp_path)
    return gateway


@pytest.fixture
def client(gateway: Gateway) -> Iterator[TestClient]:
    app = create_app(lambda _request: gateway, lifespan=lambda _app: background_jobs(gateway))
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def new_key(client: TestClient, name: str = "test", **fields: object) -> dict[str, str]:
    response = client.post(
        "/v1/admin/keys",
        json={"name": name, **fields},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


@pytest.fixture
def auth(client: TestClient) -> dict[str, str]:
    return new_key(client)


def put_policy(client: TestClient, **document: object) -> dict[str, object]:
    """Store a policy document (version = current + 1 unless given) through the admin API."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    current = client.get("/v1/admin/policy", headers=admin).json()
    body = {"version": current["version"] + 1, **document}
    response = client.put("/v1/admin/policy", json=body, headers=admin)
    assert response.status_code == 200, response.text
    return response.json()
