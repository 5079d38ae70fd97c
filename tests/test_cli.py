"""The local CLI and runtime (issue 11, items 10 and 12): the data directory it uses,
one validation with the HTTP API, audit lines, private data files, a minimum admin token
and signed URLs kept out of the access log."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import anyio
import httpx

from fluxgate.local.cli import RedactSignatures
from fluxgate.local.runtime import build_gateway

from .servers import cli, local_server


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLUXGATE_")}
    return {**env, **extra}


def test_keys_create_says_which_data_dir_and_honours_fluxgate_data_dir(tmp_path: Path):
    data = tmp_path / "shared"
    made = cli("keys", "create", "--name", "phone", env=_env(FLUXGATE_DATA_DIR=str(data)))
    assert made.returncode == 0, made.stderr
    assert str(data.resolve()) in made.stderr and "FLUXGATE_DATA_DIR" in made.stderr
    gateway = build_gateway(data, _env())
    principal = anyio.run(gateway.authenticate, f"Bearer {made.stdout.strip()}")
    assert principal.key.name == "phone"


def test_keys_create_refuses_what_the_http_api_refuses(tmp_path: Path):
    env = _env(FLUXGATE_DATA_DIR=str(tmp_path / "d"))
    for args in (["--tier", "gold"], ["--name", "\U0001f600" * 100], ["--scope", "root"]):
        made = cli("keys", "create", "--name", "x", *args, env=env)
        assert made.returncode != 0 and made.stdout == "", made.stderr
    listed = cli("keys", "list", env=env)
    assert listed.stdout.strip() == ""


def test_cli_admin_actions_write_an_audit_line(tmp_path: Path):
    env = _env(FLUXGATE_DATA_DIR=str(tmp_path / "d"))
    made = cli("keys", "create", "--name", "x", env=env)
    lines = [json.loads(x) for x in made.stderr.splitlines() if x.startswith("{")]
    created = [x for x in lines if x.get("action") == "key.create"]
    assert created and created[0]["actor"] == "cli"
    assert made.stdout.strip() not in made.stderr
    key_id = json.loads(cli("keys", "list", env=env).stdout)["id"]
    revoked = cli("keys", "revoke", key_id, env=env)
    lines = [json.loads(x) for x in revoked.stderr.splitlines() if x.startswith("{")]
    assert any(x.get("action") == "key.revoke" and x["actor"] == "cli" for x in lines)


def test_serve_refuses_a_short_admin_token(tmp_path: Path):
    env = _env(FLUXGATE_ADMIN_TOKEN="short-token", FLUXGATE_DATA_DIR=str(tmp_path / "d"))
    run = cli("serve", "--port", "1", env=env)
    assert run.returncode == 2
    assert "FLUXGATE_ADMIN_TOKEN" in run.stderr and "32" in run.stderr
    assert "short-token" not in run.stderr


def test_data_files_are_private(tmp_path: Path):
    data = tmp_path / "d"
    gateway = build_gateway(data, _env())
    anyio.run(
        lambda: gateway.objects.put(
            "images/abc.png", b"x", content_type="image/png", custom_metadata={}
        )
    )
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"


def test_access_log_filter_redacts_signatures():
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", "/v1/files/images/a.png?exp=1&kid=k&sig=SECRET", "1.1", 200),
        None,
    )
    RedactSignatures().filter(record)
    assert "SECRET" not in record.getMessage() and "sig=REDACTED" in record.getMessage()


def test_the_server_never_logs_a_signature_and_warns_about_host(tmp_path: Path):
    with local_server(tmp_path) as server:
        key = server.new_key("log")
        r = httpx.post(
            f"{server.base}/v1/images/generations",
            json={"prompt": "a paper crane", "width": 256, "height": 256, "steps": 1},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        url = r.json()["data"][0]["url"]
        assert httpx.get(url, timeout=30).status_code == 200
        sig = url.rsplit("sig=", 1)[1]
        log = server.output()
    assert "sig=REDACTED" in log and sig not in log
    assert "FLUXGATE_PUBLIC_BASE_URL is not set" in log
