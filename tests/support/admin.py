"""Keys and policy documents, made through the admin API of the runtime under test.

A test makes its own keys (``auth``, :func:`new_key`) and its own policy versions
(:func:`put_policy`), over HTTP as an operator would, so that the same steps work on both
runtimes and no test depends on another's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from .config import ADMIN_TOKEN, rate_limit_rules_of
from .runtimes import on_worker

ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def admin() -> dict[str, str]:
    """The admin token's headers."""
    return dict(ADMIN_HEADERS)


def new_key(client: httpx.Client, name: str = "test", **fields: object) -> dict[str, str]:
    """A new API key (``fields``: the admin API's, e.g. ``scopes``), as request headers."""
    response = client.post("/v1/admin/keys", json={"name": name, **fields}, headers=ADMIN_HEADERS)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


@pytest.fixture
def auth(client: httpx.Client) -> dict[str, str]:
    """A new API key of the default tier, as request headers."""
    return new_key(client)


def put_policy(client: httpx.Client, **document: object) -> dict[str, object]:
    """Store a policy document (version = current + 1 unless given) through the admin API."""
    current = client.get("/v1/admin/policy", headers=ADMIN_HEADERS).json()
    body = {"version": current["version"] + 1, **document}
    response = client.put("/v1/admin/policy", json=body, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


@pytest.fixture
def rate_limit_rules(
    client: httpx.Client, request: pytest.FixtureRequest
) -> Callable[..., dict[str, object]]:
    """Store a policy document with the test's ``@pytest.mark.rate_limits(rules)``.

    Locally the window limiter follows the document. On Workers each rule is a Rate Limiting
    binding, ``RATE_LIMIT_<NAME>``, whose limit is fixed by ``wrangler.toml``: the deployer
    declares one per rule, and the test's stack on workerd is started with the same. Its
    windows are fixed and aligned to the wall clock (Miniflare counts per
    ``floor(now / period)``), and workerd's clock cannot be moved: a test that counts to a
    limit there starts early in a window, so that its requests all fall in one.
    """
    rules = rate_limit_rules_of(request)
    assert rules, "mark the test with @pytest.mark.rate_limits({name: {limit, period}})"
    worker = on_worker(request)

    def store(**document: object) -> dict[str, object]:
        stored = put_policy(client, rate_limits=rules, **document)
        if worker:
            early_in_a_window(max(int(rule["period"]) for rule in rules.values()))
        return stored

    return store


def early_in_a_window(period: int) -> None:
    """Wait for the next fixed window of ``period`` seconds when less than half of this one
    (at most 15 s) is left."""
    left = period - time.time() % period
    if left < min(15.0, period / 2):
        time.sleep(left + 0.05)
