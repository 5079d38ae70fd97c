"""Both runtimes end to end on a real socket (`fluxgate serve`, `npm run worker`), driven like
curl would; and the local CLI."""

import os
import stat
from pathlib import Path

import httpx
import pytest

from fluxgate import FLUX_MODEL_ID
from fluxgate.local.cli import main

from ..support.servers import ADMIN, cli, serve

pytestmark = pytest.mark.runtimes("local", "worker")


@pytest.fixture
def server(runtime: str, tmp_path: Path):
    with serve(runtime, tmp_path) as running:
        yield running


def test_a_curl_session_against_a_real_server(server, runtime):
    # Offline, `fluxgate serve` names its placeholder model; the Worker calls the AI binding
    # for flux-2-dev and cannot tell that the stand-in answers in its place.
    model = "placeholder/flux-2-dev" if runtime == "local" else FLUX_MODEL_ID
    base = server.base
    key = server.new_key("laptop")
    auth = {"Authorization": f"Bearer {key}"}

    with httpx.Client(base_url=base, timeout=30) as http:
        first = http.post(
            "/v1/images/generations",
            headers=auth,
            json={"prompt": "a paper crane", "width": 512, "height": 384},
        )
        assert first.status_code == 200, first.text
        assert first.headers["x-cache"] == "MISS"
        assert first.headers["x-fluxgate-model"] == model
        assert first.json()["model"] == model
        url = first.json()["data"][0]["url"]
        assert url.startswith(base + "/v1/files/images/")

        image = http.get(url)
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")

        again = http.post(
            "/v1/images/generations",
            headers=auth,
            json={"prompt": "a paper crane", "width": 512, "height": 384},
        )
        assert again.headers["x-cache"] == "HIT" and again.json()["cached"] is True

        tampered = http.get(url.replace("exp=", "exp=9"))
        assert tampered.status_code == 403

        admin = {"Authorization": f"Bearer {ADMIN}"}
        listed = http.get("/v1/admin/keys", headers=admin).json()["data"]
        assert [k["name"] for k in listed] == ["laptop"]

    output = server.output()
    assert key not in output and ADMIN not in output


def test_keys_commands(tmp_path, capsys):
    data = str(tmp_path / "d")
    assert main(["keys", "create", "--name", "ci", "--data-dir", data]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("fgk_")
    assert main(["keys", "list", "--json", "--data-dir", data]) == 0
    listing = capsys.readouterr().out
    assert '"name": "ci"' in listing and key not in listing
    key_id = listing.split('"id": "')[1].split('"')[0]
    assert main(["keys", "revoke", key_id, "--json", "--data-dir", data]) == 0
    assert '"revoked": true' in capsys.readouterr().out
    assert main(["keys", "revoke", "key_missing", "--data-dir", data]) == 1


def test_the_generated_signing_secret_is_private(tmp_path):
    assert main(["keys", "list", "--data-dir", str(tmp_path / "d")]) == 0
    secret = tmp_path / "d" / "url-signing-keys"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600


def test_bad_configuration_stops_start_up_with_a_clear_message(tmp_path):
    env = {**os.environ, "FLUXGATE_CACHE_TTL_SECONDS": "5"}
    result = cli("serve", "--data-dir", str(tmp_path / "d"), env=env)
    assert result.returncode == 2
    assert "FLUXGATE_CACHE_TTL_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr


def test_cloudflare_credentials_select_the_real_model(tmp_path):
    from fluxgate.local.runtime import build_gateway

    env = {"CLOUDFLARE_ACCOUNT_ID": "acct", "CLOUDFLARE_API_TOKEN": "tok"}
    assert build_gateway(tmp_path / "a", env).model_name == FLUX_MODEL_ID
    assert build_gateway(tmp_path / "b", {}).model_name == "placeholder/flux-2-dev"
