"""The OpenAPI contract, fuzzed: schemathesis runs against `fluxgate serve` on a real
socket, generating requests for every operation from /openapi.json, and checks that no
request gets a 5xx, every response matches its documented schema and content type, and
every status code is documented.

Two runs: the client API with an API key, and the admin API with the admin token (a key
with the admin scope would let the fuzzer revoke the very key it is testing with).
"""

import subprocess
import sys
from pathlib import Path

import pytest

from ..support.servers import ADMIN, serve

pytestmark = pytest.mark.runtimes("local", "worker")

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
        "response_headers_conformance",
    ]
)
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def server(runtime, tmp_path):
    limits = {"rate_limit_per_minute": "1000000", "daily_budget_usd": "1000000"}
    with serve(runtime, tmp_path, **limits) as running:
        yield running.base, running.new_key("contract"), tmp_path


def run_schemathesis(base: str, token: str, tmp: Path, *filters: str) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{base}/openapi.json",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            "25",
            "--seed",
            "7",
            "--no-color",
            "--generation-database",
            "none",
            "--workers",
            "1",
            *filters,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
        check=False,
    )
    summary = result.stdout[-6000:]
    assert result.returncode == 0, summary
    assert "Tested:" in summary


def test_client_api_honours_its_contract(server):
    base, key, data = server
    run_schemathesis(base, key, data, "--exclude-tag", "admin")


def test_admin_api_honours_its_contract(server):
    base, _, data = server
    run_schemathesis(base, ADMIN, data, "--include-tag", "admin")
