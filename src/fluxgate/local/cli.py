"""``fluxgate``: run the gateway locally and manage its API keys.

Every command names the data directory it uses (stderr): a key made in the wrong directory
is a key the server has never heard of. Data goes to stdout, messages to stderr, so that
``fluxgate keys create`` can be captured (``KEY=$(fluxgate keys create --name x)``) and
``--json`` output piped. The key commands go through the same functions as the HTTP admin
API (:mod:`fluxgate.api.routes.admin`): the same checks, the same audit lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from .. import __version__
from ..access.auth import ALL_SCOPES, DEFAULT_SCOPES, KeyRecord
from ..api.deps import AdminActor
from ..api.request_body import validation_error
from ..api.routes.admin import create_key, revoke_key_as, rotate_key_as
from ..api.schemas import KeyCreate, KeyRotate
from ..delivery.signing import SigningConfigError
from ..model.family import is_placeholder
from ..policy.document import PolicyDocument
from ..service.gateway import Gateway
from ..service.settings import ConfigError, Settings
from .logs import send_to_stderr
from .runtime import (
    DATA_DIR_VARIABLE,
    DEFAULT_DATA_DIR,
    ENV_PREFIX,
    build_gateway,
    build_runtime,
    data_dir_from,
)

DESCRIPTION = """\
Run the Fluxgate image-generation API on this machine (the same app as the Worker, on
embedded stores), and manage the API keys in its data directory."""

EPILOG = f"""\
examples:
  fluxgate serve                              the console and API on http://127.0.0.1:8787/
  fluxgate serve --host 0.0.0.0 --port 9000   reachable from other machines
  KEY=$(fluxgate keys create --name laptop)   the key is printed once, on stdout
  fluxgate keys list                          a table; --json for one object per line
  fluxgate keys show KEY_ID
  fluxgate keys rotate KEY_ID --grace-seconds 3600
  fluxgate keys revoke KEY_ID
  fluxgate sweep                              delete images older than the retention

Every command uses the data directory of --data-dir, else ${DATA_DIR_VARIABLE}, else
./{DEFAULT_DATA_DIR}, and prints which one on stderr: give the keys commands the server's.
"""

KEYS_EPILOG = """\
examples:
  fluxgate keys create --name ci --scope images:generate --tier standard
  fluxgate keys list --json | jq -r .id            every key's id, one per line
  fluxgate keys rotate KEY_ID --grace-seconds 0   the old key stops working at once
"""

DATA_DIR_HELP = f"data directory (default: ${DATA_DIR_VARIABLE}, else ./{DEFAULT_DATA_DIR})"


def _data_dir(args: argparse.Namespace) -> Path:
    """The data directory this command uses, and where that choice came from (stderr): a
    key made in the wrong directory is a key the server has never heard of."""
    path = data_dir_from(args.data_dir, os.environ)
    source = (
        "--data-dir"
        if args.data_dir
        else DATA_DIR_VARIABLE
        if os.environ.get(DATA_DIR_VARIABLE)
        else f"default; set {DATA_DIR_VARIABLE} or --data-dir to match the server"
    )
    state = "" if path.exists() else ", new"
    print(f"fluxgate: data directory {path.resolve()} ({source}{state})", file=sys.stderr)
    return path


def _say(message: str) -> None:
    """A message for the person at the terminal: stderr, so stdout stays data."""
    print(message, file=sys.stderr)


# -- serve -----------------------------------------------------------------------------------


# Listening on every interface: a browser cannot open these, this machine's loopback can.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


def _origin(host: str, port: int) -> str:
    """The URL origin to open for a listening address (a wildcard address becomes this
    machine's loopback; an IPv6 literal goes in brackets)."""
    host = _WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def start_banner(host: str, port: int, settings: Settings) -> list[str]:
    """Where to go once the server is up: the console, the API's documentation (Swagger UI
    only when ``API_DOCS`` is on; the schema and docs/api.md always), health and readiness
    (for a load balancer or an orchestrator's probes)."""
    base = _origin(host, port)
    docs = (
        f"{base}/docs (schema: {base}/openapi.json)"
        if settings.api_docs
        else f"docs/api.md, schema {base}/openapi.json (FLUXGATE_API_DOCS=true serves /docs)"
    )
    return [
        f"  console    {base}/",
        f"  API docs   {docs}",
        f"  health     {base}/healthz",
        f"  readiness  {base}/readyz",
    ]


def start_warnings(gateway: Gateway) -> list[str]:
    """What an operator should know before others use this server."""
    warnings = []
    if is_placeholder(gateway.model_name):
        warnings.append(
            "  No CLOUDFLARE_ACCOUNT_ID/CLOUDFLARE_API_TOKEN: images come from the offline "
            "placeholder generator, and output moderation uses a placeholder classifier "
            "(placeholder/image-classifier) that checks nothing and calls every image safe."
        )
    if not gateway.admin_token:
        warnings.append(
            "  FLUXGATE_ADMIN_TOKEN is not set: /v1/admin is off; create keys with "
            "'fluxgate keys create --name NAME'."
        )
    if gateway.settings.public_base_url is None:
        warnings.append(
            "  warning: FLUXGATE_PUBLIC_BASE_URL is not set: signed URLs and job links take "
            "their origin from each request's Host header, which any client can set. Set it "
            "to this server's public origin when others can reach it."
        )
    warnings += [f"  warning: {line}" for line in gateway.readiness.warnings()]
    return warnings


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        _say("fluxgate serve needs the local extra: pip install 'fluxgate[local]'")
        return 2
    from ..api.app import create_app

    data_dir = _data_dir(args)
    runtime = build_runtime(data_dir)
    gateway = runtime.gateway
    app = create_app(lambda _request: gateway, lifespan=lambda _app: runtime.background_jobs())
    send_to_stderr()  # Fluxgate's own lines (the audit log among them), as they are: JSON
    _say(
        f"Fluxgate {__version__} on {_origin(args.host, args.port)}  "
        f"models={','.join(gateway.model_names)}  data={data_dir}"
    )
    for line in [*start_banner(args.host, args.port, gateway.settings), *start_warnings(gateway)]:
        _say(line)
    # uvicorn's own access log would print each URL, a signed URL's signature included; the
    # app writes one JSON line per request instead (fluxgate.access, api/asgi_envelope.py).
    # Its proxy headers are off: by default it takes X-Forwarded-For from a loopback peer
    # as the client, which any local client could set to dodge the failed-attempt throttle
    # (the client is the TCP peer: api/app.py, peer_address).
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        proxy_headers=False,
    )
    uvicorn.Server(config).run()
    return 0


# -- keys: how a key is shown ----------------------------------------------------------------

TABLE_COLUMNS = ("id", "name", "tier", "scopes", "created", "expires", "status")


def when(timestamp: int | None, missing: str = "never") -> str:
    """A Unix time as UTC ISO 8601 (one token, so table columns stay aligned)."""
    if timestamp is None:
        return missing
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def key_status(key: dict[str, Any], now: float) -> str:
    """``revoked``, ``expired`` or ``active``: what a request with this key would meet."""
    if key["revoked"]:
        return "revoked"
    if key["expires_at"] is not None and key["expires_at"] <= now:
        return "expired"
    return "active"


def tier_shown(tier: str | None, policy: PolicyDocument) -> str:
    """The tier a request with the key meets, by the policy document's name: the key's own;
    the document's default tier when the key names none; the default tier, marked as a
    fallback, when the key names one the document no longer has."""
    chosen, _ = policy.tier(tier)
    return chosen if tier in (None, chosen) else f"{chosen} (fallback from '{tier}')"


def _row(key: dict[str, Any], now: float, policy: PolicyDocument) -> dict[str, str]:
    return {
        "id": key["id"],
        "name": key["name"],
        "tier": tier_shown(key["tier"], policy),
        "scopes": ",".join(key["scopes"]),
        "created": when(key["created"]),
        "expires": when(key["expires_at"]),
        "status": key_status(key, now),
    }


def key_table(keys: Sequence[dict[str, Any]], now: float, policy: PolicyDocument) -> str:
    """Keys (their public records) as a table with a header line, columns space-aligned;
    tiers by the names of ``policy`` (:func:`tier_shown`)."""
    rows = [_row(key, now, policy) for key in keys]
    widths = {c: max([len(c), *(len(row[c]) for row in rows)]) for c in TABLE_COLUMNS}
    header = {c: c.upper() for c in TABLE_COLUMNS}
    return "\n".join(
        "  ".join(row[c].ljust(widths[c]) for c in TABLE_COLUMNS).rstrip()
        for row in [header, *rows]
    )


def key_details(record: KeyRecord, now: float, policy: PolicyDocument) -> str:
    """One key as ``field: value`` lines; with its last rotation, which the public record
    (the admin API's) leaves out and an operator checking a rotation needs."""
    key = record.public()
    fields = {
        **_row(key, now, policy),
        "scopes": ", ".join(key["scopes"]),
        "rotated": when(record.rotated_at),
        "revoked": when(key["revoked_at"], missing="no"),
        "overrides": json.dumps(key["overrides"]) if key["overrides"] else "none",
    }
    width = max(len(name) for name in fields) + 1
    return "\n".join(f"{(name + ':').ljust(width)} {value}" for name, value in fields.items())


def _print_json(record: KeyRecord) -> None:
    print(json.dumps(record.public()))


# -- keys: the commands ----------------------------------------------------------------------

Body = TypeVar("Body", bound=BaseModel)
Read = TypeVar("Read")


def _validated(model: type[Body], fields: dict[str, object]) -> Body | None:
    """The HTTP API's schema, and its wording for a refusal (then ``None``)."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        _say(f"fluxgate: {validation_error(exc.errors()).message}")
        return None


def _keys_create(args: argparse.Namespace, gateway: Gateway, actor: AdminActor) -> int:
    fields: dict[str, object] = {"name": args.name, "tier": args.tier}
    if args.scope:
        fields["scopes"] = args.scope
    body = _validated(KeyCreate, fields)
    if body is None:
        return 2
    token, record = asyncio.run(create_key(gateway, body, actor))
    _say(f"Created {record.id} ({record.name}). This key is shown once:")
    print(token)
    return 0


async def _with_policy(gateway: Gateway, read: Awaitable[Read]) -> tuple[Read, PolicyDocument]:
    """What ``read`` gives, and the policy document in force (its tier names)."""
    return await read, await gateway.policies.current()


def _keys_list(args: argparse.Namespace, gateway: Gateway, _actor: AdminActor) -> int:
    records, policy = asyncio.run(_with_policy(gateway, gateway.keys.list_all()))
    if args.json:
        for record in records:
            _print_json(record)
    elif records:
        print(key_table([r.public() for r in records], gateway.clock(), policy))
    else:
        _say("No keys in this data directory; create one with 'fluxgate keys create'.")
    return 0


def _keys_show(args: argparse.Namespace, gateway: Gateway, _actor: AdminActor) -> int:
    record, policy = asyncio.run(_with_policy(gateway, gateway.keys.get(args.id)))
    if record is None:
        _say(f"fluxgate: No API key with id '{args.id}'.")
        return 1
    if args.json:
        _print_json(record)
    else:
        print(key_details(record, gateway.clock(), policy))
    return 0


def _keys_rotate(args: argparse.Namespace, gateway: Gateway, actor: AdminActor) -> int:
    body = _validated(KeyRotate, {"grace_seconds": args.grace_seconds})
    if body is None:
        return 2
    grace = body.grace_seconds
    token, record = asyncio.run(rotate_key_as(gateway, args.id, grace, actor))
    old_key = (
        f"the old key works until {when(int(gateway.clock()) + grace)}"
        if grace
        else "the old key no longer works"
    )
    _say(f"Rotated {record.id} ({record.name}): {old_key}. The new key is shown once:")
    print(token)
    return 0


def _keys_revoke(args: argparse.Namespace, gateway: Gateway, actor: AdminActor) -> int:
    record = asyncio.run(revoke_key_as(gateway, args.id, actor))
    if args.json:
        _print_json(record)
    else:
        print(
            f"{record.id} ({record.name}) is revoked, since {when(record.revoked_at)}; "
            "the client tokens it minted are refused too."
        )
    return 0


KeyCommand = Callable[[argparse.Namespace, Gateway, AdminActor], int]


def _keys(args: argparse.Namespace) -> int:
    gateway = build_gateway(_data_dir(args))
    send_to_stderr()  # the audit lines of admin actions, as the server writes them
    command: KeyCommand = args.key_handler
    return command(args, gateway, AdminActor(None, actor="cli"))


def _sweep(args: argparse.Namespace) -> int:
    """One retention sweep (``fluxgate serve`` sweeps by itself; this is for a data
    directory no server runs on, from cron say)."""
    sweeper = build_runtime(_data_dir(args)).sweeper
    if sweeper is None:
        _say(f"fluxgate sweep: {ENV_PREFIX}IMAGE_RETENTION_DAYS is not set; nothing expires")
        return 0
    swept = asyncio.run(sweeper.sweep())
    _say(f"swept: {swept.images} images and {swept.rows} listing rows deleted")
    return 0


def _sweep_command(sub: Subparsers) -> None:
    sweep = _command(sub, "sweep", "delete the images older than the retention, once")
    sweep.set_defaults(run=_sweep)


# -- the parser ------------------------------------------------------------------------------


class Subparsers(Protocol):
    """What ``add_subparsers()`` returns, as far as this module uses it (argparse does not
    name its class publicly)."""

    def add_parser(
        self,
        name: str,
        *,
        help: str,
        description: str,
        epilog: str | None,
        formatter_class: type[argparse.HelpFormatter],
    ) -> argparse.ArgumentParser: ...


def _command(
    sub: Subparsers, name: str, summary: str, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A subcommand with the root's formatting, and the same text as its summary in the
    parent's list and as its own description."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)
    return parser


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--json", action="store_true", help=f"print {what}, for scripts (default: off)"
    )


def _serve_command(sub: Subparsers) -> None:
    serve = _command(sub, "serve", "run the API, its console and its docs on this machine")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--port", type=int, default=8787, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug", "trace"),
        help="uvicorn's log level (default: %(default)s)",
    )
    serve.set_defaults(run=_serve)


def _keys_commands(sub: Subparsers) -> None:
    keys = sub.add_parser(
        "keys",
        help="manage the API keys in the data directory",
        description="Manage the API keys in the data directory, as the admin API does.",
        epilog=KEYS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keys.set_defaults(run=_keys)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    create = _command(keys_sub, "create", "create a key and print it once (stdout)")
    create.add_argument("--name", required=True, help="a label for the key (required)")
    create.add_argument(
        "--scope",
        action="append",
        metavar="SCOPE",
        help=f"one of {', '.join(ALL_SCOPES)}; repeat for several "
        f"(default: {' and '.join(DEFAULT_SCOPES)})",
    )
    create.add_argument(
        "--tier", help="a tier of the policy document (default: the document's default tier)"
    )
    create.set_defaults(key_handler=_keys_create)

    listing = _command(keys_sub, "list", "list the keys (never the keys themselves)")
    _json_option(listing, "one JSON object per key and line instead of a table")
    listing.set_defaults(key_handler=_keys_list)

    show = _command(keys_sub, "show", "show one key's record")
    show.add_argument("id", metavar="KEY_ID", help="the key's id (key_...)")
    _json_option(show, "the record as JSON")
    show.set_defaults(key_handler=_keys_show)

    rotate = _command(keys_sub, "rotate", "issue a new key for the same id and print it once")
    rotate.add_argument("id", metavar="KEY_ID", help="the key's id (key_...)")
    rotate.add_argument(
        "--grace-seconds",
        type=int,
        default=KeyRotate().grace_seconds,
        metavar="N",
        help="how long the old key keeps working; 0 ends it at once (default: %(default)s)",
    )
    rotate.set_defaults(key_handler=_keys_rotate)

    revoke = _command(keys_sub, "revoke", "revoke a key and the client tokens it minted")
    revoke.add_argument("id", metavar="KEY_ID", help="the key's id (key_...)")
    _json_option(revoke, "the revoked record as JSON")
    revoke.set_defaults(key_handler=_keys_revoke)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="fluxgate",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    root.add_argument(
        "--version",
        action="version",
        version=f"fluxgate {__version__}",
        help="print 'fluxgate VERSION' and exit",
    )
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _serve_command(sub)
    _keys_commands(sub)
    _sweep_command(sub)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, SigningConfigError) as exc:
        _say(f"fluxgate: {exc}")
        return 2
    except Exception as exc:  # ApiError: an unknown id, a revoked key, an unknown tier
        message = getattr(exc, "message", None) or str(exc)
        _say(f"fluxgate: {message}")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
