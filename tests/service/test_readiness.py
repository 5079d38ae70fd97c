"""``/readyz``: configuration, and KV, R2 and the model reachable; ``/healthz`` stays a
liveness probe that touches nothing."""

import pytest

from fluxgate import FLUX_MODEL_ID

from ..support.runtimes import FAILS_STORE

pytestmark = pytest.mark.runtimes("local", "worker")


def test_a_working_deployment_is_ready(client):
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready" and body["model"] == FLUX_MODEL_ID
    assert set(body["checks"]) == {"config", "kv", "r2", "model"}
    assert all(check["ok"] for check in body["checks"].values())
    assert all(body["checks"][name]["ms"] >= 0 for name in ("kv", "r2", "model"))
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_a_kv_outage_makes_it_unready_but_not_unhealthy(client, storage):
    storage.fail(kv_reads=("readyz",))
    answer = client.get("/readyz")
    assert answer.status_code == 503
    body = answer.json()
    assert body["status"] == "unready"
    assert body["checks"]["kv"]["ok"] is False and body["checks"]["kv"]["error"]
    assert body["checks"]["r2"]["ok"] and body["checks"]["model"]["ok"]
    assert client.get("/healthz").status_code == 200


@pytest.mark.runtimes("local", reason=FAILS_STORE)
def test_readiness_needs_no_credentials_and_reveals_no_details(client, storage):
    storage.fail(kv_reads=("readyz",))
    text = client.get("/readyz").text
    assert "readyz:probe" not in text and "Traceback" not in text


@pytest.mark.secrets(ADMIN_TOKEN="too-short-admin-token")
def test_a_misconfigured_worker_is_unready_without_probing(runtime, client):
    if runtime == "local":
        pytest.skip("the local server refuses to start with a bad setting (test_auth_hardening)")
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"config": {"ok": False, "error": "server_misconfigured"}}
    assert "too-short-admin-token" not in answer.text


def test_the_model_is_asked_once_per_half_minute():
    """``/readyz`` is public: its one probe that spends upstream quota (the model catalog)
    is reused for 30 s, while KV and R2 are asked every time."""
    import anyio

    from fluxgate.service.readiness import Readiness

    class Counting:
        name = "counting"

        def __init__(self) -> None:
            self.asked = 0

        async def generate(self, request):
            raise AssertionError("readiness never generates")

        async def ready(self) -> None:
            self.asked += 1

    class Store:
        def __init__(self) -> None:
            self.reads = 0

        async def get(self, key, **_):
            self.reads += 1

        async def head(self, key):
            self.reads += 1

    now = [1000.0]
    model, store = Counting(), Store()
    readiness = Readiness(kv=store, objects=store, model=model, clock=lambda: now[0])
    for at in (1000.0, 1010.0, 1029.9, 1030.0):
        now[0] = at
        checks = anyio.run(readiness.checks)
        assert all(check.ok for check in checks.values())
    assert model.asked == 2 and store.reads == 8
