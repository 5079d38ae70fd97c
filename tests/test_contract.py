"""The OpenAPI contract, fuzzed: schemathesis runs against `fluxgate serve` on a real
socket, generating requests for every operation from /openapi.json, and checks that no
request gets a 5xx, every response matches its documented schema and content type, and
every status code is documented.

Two runs: the client API with an API key, and the admin API with the admin token (a key
with the admin scope would let the fuzzer revoke the very key it is testing with).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .test_local_server import ADMIN, cli, free_port, wait_until_up

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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("contract")
    port = free_port()
    env = {
        **os.environ,
        "FLUXGATE_ADMIN_TOKEN": ADMIN,
        "FLUXGATE_RATE_LIMIT_PER_MINUTE": "1000000",
        "FLUXGATE_DAILY_BUDGET_USD": "1000000",
    }
    env.pop("CLOUDFLARE_API_TOKEN", None)
    log = (data / "server.log").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fluxgate.local.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data / "d"),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base, proc, log)
    key = cli(
        "keys", "create", "--name", "contract", "--data-dir", str(data / "d"), env=env
    ).stdout.strip()
    yield base, key, data
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


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
