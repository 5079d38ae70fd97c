"""The README's curl session runs exactly as written, against both runtimes."""

import hashlib
from collections.abc import Mapping
from pathlib import Path

import pytest

from ..support.doc_sessions import run_block, session_block
from ..support.servers import ADMIN, serve

pytestmark = pytest.mark.runtimes("local", "worker")

README = Path(__file__).resolve().parents[2] / "README.md"


def run_session(base: str, env: Mapping[str, str], folder: Path) -> None:
    """Run the session against the server at ``base`` (``env``: the server's secrets on top
    of the environment) in ``folder``, and check what it prints and downloads. Shared with
    tests/edge/test_workerd_startup.py, which runs it on a Worker restored from a snapshot."""
    block = session_block(README, "readme-session")
    out = run_block(block, folder, {**env, "FLUXGATE": base, "ADMIN_TOKEN": ADMIN})
    assert [line.lower() for line in out[:1]] == ["x-cache: miss"]
    assert out[1] == "200 image/png"
    assert (folder / "crane.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert out[2].lower() == "x-cache: hit"
    assert float(out[3]) == 0.0  # charged_usd of the hit
    assert out[4] == "403"
    small = hashlib.sha256((folder / "small.png").read_bytes()).hexdigest()
    assert out[5] == str([small])  # the reference image's digest


@pytest.fixture
def server(runtime, tmp_path):
    with serve(runtime, tmp_path) as running:
        yield running


def test_the_readme_session_runs_as_written(server, tmp_path):
    run_session(server.base, server.env, tmp_path)
