"""The HTTP clients a black-box test talks to the runtime under test with.

``client`` is an ``httpx.Client`` on either runtime: Starlette's ``TestClient`` on the
FastAPI app in process (its lifespan runs the local background jobs), or a client over real
HTTP to the Worker on workerd. ``async_client`` opens ``AsyncClient``\\ s the same way, for
concurrent requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from fluxgate.api.app import create_app
from fluxgate.local.runtime import LocalRuntime
from fluxgate.service.gateway import Gateway

from .runtimes import on_worker
from .workerd import Workerd


@pytest.fixture
def client(runtime: str, request: pytest.FixtureRequest) -> Iterator[httpx.Client | TestClient]:
    """A client of the runtime under test: over HTTP (httpx) to the Worker, in process
    (Starlette's test client, on the httpx2 fork) locally; the same calls on both."""
    if on_worker(request):
        stack: Workerd = request.getfixturevalue("workerd")
        with httpx.Client(base_url=stack.base, timeout=60) as over_http:
            yield over_http
        return
    local: LocalRuntime = request.getfixturevalue("local_runtime")
    gateway = local.gateway
    app = create_app(lambda _request: gateway, lifespan=lambda _app: local.background_jobs())
    with TestClient(app, raise_server_exceptions=False) as in_process:
        yield in_process


@pytest.fixture
def async_client(runtime: str, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Opens an ``AsyncClient`` (of ``httpx``, or of a module shaped like it) on the runtime
    under test, for concurrent requests: over ASGI in process, over real HTTP to workerd."""
    if on_worker(request):
        base = request.getfixturevalue("workerd").base

        def over_http(module: Any = httpx) -> Any:
            return module.AsyncClient(base_url=base, timeout=60)

        return over_http
    gateway: Gateway = request.getfixturevalue("gateway")

    def in_process(module: Any = httpx) -> Any:
        transport = module.ASGITransport(app=create_app(lambda _request: gateway))
        return module.AsyncClient(transport=transport, base_url="http://fluxgate")

    return in_process


def origin(client: httpx.Client) -> str:
    """The origin the runtime under test answers on (signed URLs and Locations use it)."""
    return str(client.base_url).rstrip("/")
