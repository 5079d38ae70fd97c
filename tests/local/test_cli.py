"""The local CLI and runtime: the data directory it uses, one validation with the HTTP API,
audit lines, private data files, a minimum admin token and signed URLs kept out of the JSON
access log; help that states every default, the key commands (list, show, rotate, revoke)
for people and for scripts, and a start banner that says where everything is."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import httpx
import pytest

import fluxgate
from fluxgate.errors import ApiError
from fluxgate.local.cli import key_status, key_table, main, start_banner, tier_shown
from fluxgate.local.runtime import build_gateway
from fluxgate.policy.document import PolicyDocument
from fluxgate.service.settings import Settings

from ..support.polling import wait_for
from ..support.servers import cli, local_server


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
    listed = cli("keys", "list", "--json", env=env)
    assert listed.stdout.strip() == ""


def test_cli_admin_actions_write_an_audit_line(tmp_path: Path):
    env = _env(FLUXGATE_DATA_DIR=str(tmp_path / "d"))
    made = cli("keys", "create", "--name", "x", env=env)
    lines = [json.loads(x) for x in made.stderr.splitlines() if x.startswith("{")]
    created = [x for x in lines if x.get("action") == "key.create"]
    assert created and created[0]["actor"] == "cli"
    assert made.stdout.strip() not in made.stderr
    key_id = json.loads(cli("keys", "list", "--json", env=env).stdout)["id"]
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


def test_the_server_logs_json_access_lines_without_signatures_and_warns_about_host(tmp_path: Path):
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
        # The download's line is written once its response has gone out.
        log = wait_for(lambda: "/v1/files/{" in server.output() and server.output())
    assert sig not in log and "key_" in log
    lines = [json.loads(x) for x in log.splitlines() if x.startswith("{") and '"access"' in x]
    routes = [(line["method"], line["route"], line["status"]) for line in lines]
    assert ("POST", "/v1/images/generations", 200) in routes
    assert ("GET", "/v1/files/{object_key:path}", 200) in routes
    assert all(line["request_id"] for line in lines)
    assert "FLUXGATE_PUBLIC_BASE_URL is not set" in log
    # No C2PA identity configured: the development chain, said at start (and on /readyz)
    assert "warning: c2pa_development_chain: " in log


# -- help and version ------------------------------------------------------------------------

COMMANDS = [
    (),
    ("serve",),
    ("keys",),
    ("keys", "create"),
    ("keys", "list"),
    ("keys", "show"),
    ("keys", "rotate"),
    ("keys", "revoke"),
]


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def option_entries(help_text: str) -> list[str]:
    """Each option of a help page with its whole (wrapped) help text, on one line."""
    section = help_text.split("\noptions:\n", 1)[1].split("\n\n", 1)[0]
    entries: list[str] = []
    for line in section.splitlines():
        if line.startswith("  -"):
            entries.append(line.strip())
        else:
            entries[-1] += " " + line.strip()
    return [" ".join(entry.split()) for entry in entries]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fluxgate")
def test_every_option_states_its_default(capsys, command):
    entries = option_entries(help_of(capsys, *command))
    for entry in entries:
        if entry.startswith(("-h, --help", "--version")):
            continue
        assert "(default: " in entry or "(required)" in entry, entry


def test_help_shows_the_actual_defaults(capsys):
    serve = " ".join(option_entries(help_of(capsys, "serve")))
    assert "(default: 127.0.0.1)" in serve and "(default: 8787)" in serve
    assert "(default: info)" in serve and "(default: $FLUXGATE_DATA_DIR, else ./.fluxgate)" in serve
    assert "(default: 86400)" in " ".join(option_entries(help_of(capsys, "keys", "rotate")))
    create = " ".join(option_entries(help_of(capsys, "keys", "create")))
    assert "(default: images:generate and images:read)" in create


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "fluxgate")
def test_help_is_plain_text(capsys, command):
    text = help_of(capsys, *command)
    assert "``" not in text and ":func:" not in text and ":mod:" not in text


def test_top_level_help_describes_the_tool_and_gives_examples(capsys):
    text = help_of(capsys)
    assert "image-generation API" in text
    examples = text.split("examples:", 1)[1]
    for example in ("fluxgate serve", "fluxgate keys create --name", "fluxgate keys rotate"):
        assert example in examples


def test_version_prints_the_package_version():
    run = cli("--version", env=_env())
    assert run.returncode == 0
    assert run.stdout == f"fluxgate {fluxgate.__version__}\n"


# -- keys ------------------------------------------------------------------------------------


def _keys(data: Path, *args: str) -> str:
    """Run a ``fluxgate keys`` command that must succeed; its stdout."""
    run = cli("keys", *args, "--data-dir", str(data), env=_env())
    assert run.returncode == 0, run.stderr
    return run.stdout


def _authenticate(data: Path, key: str) -> str:
    """The id of the key ``key`` authenticates as, or the code of the refusal."""
    gateway = build_gateway(data, _env())
    try:
        return anyio.run(gateway.authenticate, f"Bearer {key}").key.id
    except ApiError as exc:
        return exc.code


def _id_of(data: Path, name: str) -> str:
    keys = [json.loads(line) for line in _keys(data, "list", "--json").splitlines()]
    return next(k["id"] for k in keys if k["name"] == name)


def _shown(data: Path, key_id: str) -> dict[str, str]:
    """``fluxgate keys show``'s ``field: value`` lines, as a dict."""
    lines = [line.split(":", 1) for line in _keys(data, "show", key_id).splitlines()]
    return {name: value.strip() for name, value in lines}


def test_keys_list_is_a_table_with_a_status_per_key(tmp_path: Path):
    data = tmp_path / "d"
    _keys(data, "create", "--name", "laptop")
    _keys(data, "create", "--name", "ci", "--scope", "images:generate", "--tier", "standard")
    gateway = build_gateway(data, _env())
    anyio.run(lambda: gateway.keys.create("old", expires_at=1_000_000_000))
    _keys(data, "revoke", _id_of(data, "ci"))

    header, *rows = _keys(data, "list").splitlines()
    assert header.split() == ["ID", "NAME", "TIER", "SCOPES", "CREATED", "EXPIRES", "STATUS"]
    by_name = {row.split()[1]: row.split() for row in rows}
    assert set(by_name) == {"laptop", "ci", "old"}
    assert by_name["laptop"][2:4] == ["standard", "images:generate,images:read"]
    assert by_name["laptop"][5:] == ["never", "active"]
    assert by_name["ci"][2:4] == ["standard", "images:generate"]
    assert by_name["ci"][-1] == "revoked"
    assert by_name["old"][5:] == ["2001-09-09T01:46:40Z", "expired"]
    assert all(row.startswith("key_") for row in rows)


def _replace_tiers(data: Path, tiers: list[str]) -> None:
    """The data directory's policy document, with these tiers (all alike) instead."""
    gateway = build_gateway(data, _env())
    current = anyio.run(gateway.policies.current)
    doc = current.model_dump()
    doc.update(version=current.version + 1, tiers={name: {} for name in tiers})
    anyio.run(gateway.policies.replace, PolicyDocument.model_validate(doc))


def _columns(table: str) -> list[dict[str, str]]:
    """A space-aligned table's rows, by header (a cell may hold spaces)."""
    header, *lines = table.splitlines()
    names = header.split()
    starts = [header.index(name) for name in names]
    ends = [*starts[1:], None]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, ends, strict=True)}
        for line in lines
    ]


def test_keys_list_and_show_name_tiers_as_the_policy_does(tmp_path: Path):
    """TIER is the tier a request with the key meets, by the policy document's names: the
    document's default tier for a key that names none (no tier is called "default"), and
    for a key whose tier the document no longer has, the default tier marked as a
    fallback from the one the key names."""
    data = tmp_path / "d"
    _replace_tiers(data, ["standard", "gold"])
    _keys(data, "create", "--name", "plain")
    _keys(data, "create", "--name", "pinned", "--tier", "standard")
    _keys(data, "create", "--name", "golden", "--tier", "gold")
    _replace_tiers(data, ["standard"])  # gold is gone; the key still names it

    tiers = {row["NAME"]: row["TIER"] for row in _columns(_keys(data, "list"))}
    assert tiers == {
        "plain": "standard",
        "pinned": "standard",
        "golden": "standard (fallback from 'gold')",
    }
    assert _shown(data, _id_of(data, "plain"))["tier"] == "standard"
    assert _shown(data, _id_of(data, "golden"))["tier"] == "standard (fallback from 'gold')"
    # the JSON records are the admin API's: the tier the key names, null for none
    records = {
        r["name"]: r["tier"] for r in map(json.loads, _keys(data, "list", "--json").splitlines())
    }
    assert records == {"plain": None, "pinned": "standard", "golden": "gold"}


def test_a_tier_is_shown_by_the_name_a_request_meets():
    policy = PolicyDocument.model_validate(
        {"version": 1, "default_tier": "basic", "tiers": {"basic": {}, "pro": {}}}
    )
    assert tier_shown(None, policy) == "basic"
    assert tier_shown("pro", policy) == "pro"
    assert tier_shown("gold", policy) == "basic (fallback from 'gold')"


def test_keys_list_json_is_one_record_per_line_and_never_a_key(tmp_path: Path):
    data = tmp_path / "d"
    key = _keys(data, "create", "--name", "laptop").strip()
    _keys(data, "create", "--name", "phone")
    listed = _keys(data, "list", "--json")
    records = [json.loads(line) for line in listed.splitlines()]
    assert sorted(r["name"] for r in records) == ["laptop", "phone"]
    # oldest first; keys made within the same second in id order
    assert records == sorted(records, key=lambda r: (r["created"], r["id"]))
    assert set(records[0]) >= {"id", "name", "tier", "scopes", "created", "expires_at"}
    assert records[0]["revoked"] is False and key not in listed


def test_an_empty_list_says_so_on_stderr_only(tmp_path: Path):
    run = cli("keys", "list", "--data-dir", str(tmp_path / "d"), env=_env())
    assert run.returncode == 0 and run.stdout == ""
    assert "No keys" in run.stderr


def test_keys_show_prints_one_record_as_lines_or_json(tmp_path: Path):
    data = tmp_path / "d"
    _keys(data, "create", "--name", "laptop")
    key_id = _id_of(data, "laptop")
    shown = _shown(data, key_id)
    assert shown["id"] == key_id and shown["name"] == "laptop" and shown["status"] == "active"
    assert shown["scopes"] == "images:generate, images:read"
    assert shown["rotated"] == "never" and shown["revoked"] == "no"
    as_json = json.loads(_keys(data, "show", key_id, "--json"))
    assert as_json == json.loads(_keys(data, "list", "--json"))


def test_keys_rotate_prints_a_new_key_once_and_the_old_one_works_for_the_grace(tmp_path: Path):
    data = tmp_path / "d"
    old = _keys(data, "create", "--name", "laptop").strip()
    key_id = _id_of(data, "laptop")
    rotated = cli("keys", "rotate", key_id, "--data-dir", str(data), env=_env())
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.strip()
    assert new.startswith("fgk_") and new != old and rotated.stdout == new + "\n"
    assert "shown once" in rotated.stderr and new not in rotated.stderr
    audit = [json.loads(x) for x in rotated.stderr.splitlines() if x.startswith("{")]
    assert any(a["action"] == "key.rotate" and a["grace_seconds"] == 86400 for a in audit)
    assert _authenticate(data, new) == key_id == _authenticate(data, old)
    assert _shown(data, key_id)["rotated"].startswith("20")  # when, no longer "never"


def test_keys_rotate_with_no_grace_ends_the_old_key_at_once(tmp_path: Path):
    data = tmp_path / "d"
    old = _keys(data, "create", "--name", "laptop").strip()
    key_id = _id_of(data, "laptop")
    new = _keys(data, "rotate", key_id, "--grace-seconds", "0").strip()
    assert _authenticate(data, new) == key_id
    assert _authenticate(data, old) == "invalid_api_key"


def test_keys_rotate_refuses_what_the_http_api_refuses(tmp_path: Path):
    data = tmp_path / "d"
    _keys(data, "create", "--name", "laptop")
    key_id = _id_of(data, "laptop")
    for grace in ("-1", str(31 * 86400)):
        run = cli(
            "keys", "rotate", key_id, "--grace-seconds", grace, "--data-dir", str(data), env=_env()
        )
        assert run.returncode == 2 and run.stdout == "" and "grace_seconds" in run.stderr
    _keys(data, "revoke", key_id)
    run = cli("keys", "rotate", key_id, "--data-dir", str(data), env=_env())
    assert run.returncode == 1 and run.stdout == "" and "revoked" in run.stderr


def test_keys_revoke_says_so_and_the_key_stops_working(tmp_path: Path):
    data = tmp_path / "d"
    key = _keys(data, "create", "--name", "laptop").strip()
    key_id = _id_of(data, "laptop")
    said = _keys(data, "revoke", key_id)
    assert said.startswith(f"{key_id} (laptop) is revoked, since ")
    assert _authenticate(data, key) == "revoked_api_key"
    again = json.loads(_keys(data, "revoke", key_id, "--json"))  # idempotent
    assert again["id"] == key_id and again["revoked"] is True


@pytest.mark.parametrize("command", ["show", "rotate", "revoke"])
def test_an_unknown_key_id_is_a_clear_error(tmp_path: Path, command: str):
    run = cli("keys", command, "key_0123456789abcdef", "--data-dir", str(tmp_path), env=_env())
    assert run.returncode == 1 and run.stdout == ""
    assert "No API key with id 'key_0123456789abcdef'" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("create", "--name", "x"),
        ("list",),
        ("list", "--json"),
        ("show", "KEY"),
        ("rotate", "KEY"),
        ("revoke", "KEY"),
    ],
    ids=" ".join,
)
def test_every_keys_command_names_its_data_directory(tmp_path: Path, command: tuple[str, ...]):
    data = tmp_path / "chosen"
    _keys(data, "create", "--name", "first")
    args = [_id_of(data, "first") if arg == "KEY" else arg for arg in command]
    run = cli("keys", *args, "--data-dir", str(data), env=_env())
    assert run.returncode == 0, run.stderr
    assert f"fluxgate: data directory {data.resolve()} (--data-dir)" in run.stderr


def test_key_status_is_what_a_request_would_meet():
    key = {"revoked": False, "expires_at": None}
    assert key_status(key, now=100) == "active"
    assert key_status({**key, "expires_at": 101}, now=100) == "active"
    assert key_status({**key, "expires_at": 100}, now=100) == "expired"
    assert key_status({"revoked": True, "expires_at": 100}, now=100) == "revoked"


def test_key_table_columns_line_up_whatever_the_name_length():
    base = {"tier": None, "scopes": ["admin"], "created": 0, "expires_at": None, "revoked": False}
    keys = [{**base, "id": "key_a", "name": "x"}, {**base, "id": "key_b", "name": "a longer name"}]
    lines = key_table(keys, now=0, policy=PolicyDocument(version=1)).splitlines()
    starts = {line.index("1970-01-01T00:00:00Z") for line in lines[1:]}
    assert len(starts) == 1 and lines[0].index("CREATED") in starts


# -- serve -----------------------------------------------------------------------------------


def test_the_banner_points_at_swagger_only_when_api_docs_is_on():
    on = "\n".join(start_banner("127.0.0.1", 8787, Settings(api_docs=True)))
    assert "http://127.0.0.1:8787/docs" in on and "http://127.0.0.1:8787/openapi.json" in on
    off = "\n".join(start_banner("127.0.0.1", 8787, Settings()))
    assert "http://127.0.0.1:8787/docs" not in off
    assert "docs/api.md" in off and "http://127.0.0.1:8787/openapi.json" in off
    for line in (on, off):
        assert "http://127.0.0.1:8787/healthz" in line and "http://127.0.0.1:8787/readyz" in line


def test_the_banner_brackets_an_ipv6_host():
    assert "  console    http://[::1]:8787/" in start_banner("::1", 8787, Settings())


def test_serve_says_where_everything_is_and_those_urls_answer(tmp_path: Path):
    with local_server(tmp_path, api_docs="true") as server:
        log = server.output()
        assert f"fluxgate: data directory {(tmp_path / 'data').resolve()} (--data-dir" in log
        assert f"console    {server.base}/" in log
        for path in ("/", "/docs", "/openapi.json", "/healthz"):
            assert f"{server.base}{path}" in log
            assert httpx.get(f"{server.base}{path}", timeout=30).status_code == 200, path
        assert f"{server.base}/readyz" in log


def test_the_banner_names_a_loopback_url_for_a_wildcard_listen_address():
    assert "  console    http://127.0.0.1:8787/" in start_banner("0.0.0.0", 8787, Settings())  # noqa: S104
    assert "  console    http://[::1]:8787/" in start_banner("::", 8787, Settings())
