"""The app developers' guide's curl session (docs/mobile.md) runs exactly as written, on
both runtimes: a fresh user, signed in at the OIDC issuer double, gets a client token by
exchange and generates with it."""

from pathlib import Path

import pytest

from ..support.doc_sessions import run_block, session_block
from ..support.oidc_issuer import OidcIssuer
from ..support.servers import ADMIN, serve

pytestmark = pytest.mark.runtimes("local", "worker")

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "mobile.md"
AUDIENCE = "com.example.images"


@pytest.fixture
def server(runtime, tmp_path):
    with serve(runtime, tmp_path, issuer_allow_loopback="true") as running:
        yield running


def test_the_guides_session_runs_as_written(server, tmp_path):
    block = session_block(GUIDE, "mobile-session")
    with OidcIssuer(audience=AUDIENCE) as issuer:
        env = {**server.env, "FLUXGATE": server.base, "ADMIN_TOKEN": ADMIN, "ISSUER": issuer.url}
        out = run_block(block, tmp_path, env)
    assert out[0] == "200"
    assert out[1].lower() == 'ratelimit-policy: 5;w=3600;name="user"'
    assert out[2] == "alice 1 4"
    assert out[3] == "id_token_signature_invalid"
    assert (tmp_path / "lighthouse.json").read_text().count('"url"') == 1
