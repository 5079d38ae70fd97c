"""``fluxgate``: run the gateway locally and manage its API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from ..api.admin import create_key, revoke_key_as
from ..api.deps import AdminActor
from ..api.request_body import validation_error
from ..api.schemas import KeyCreate
from ..logs import send_to_stderr
from ..settings import ConfigError
from ..signing import SigningConfigError
from .runtime import DATA_DIR_VARIABLE, build_gateway, build_runtime, data_dir_from

# A signed URL is a bearer capability: its signature never reaches a log.
_SIGNATURE = re.compile(r"([?&]sig=)[^&#\s]*")


def redact_signatures(text: str) -> str:
    return _SIGNATURE.sub(r"\1REDACTED", text)


class RedactSignatures(logging.Filter):
    """Rewrites uvicorn's access-log lines, whose third argument is the path with its
    query string, so that signed-URL signatures are not written out."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and len(record.args) >= 3:
            args = list(record.args)
            args[2] = redact_signatures(str(args[2]))
            record.args = tuple(args)
        return True


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


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print(
            "fluxgate serve needs the local extra: pip install 'fluxgate[local]'", file=sys.stderr
        )
        return 2
    from ..api.app import create_app

    data_dir = _data_dir(args)
    runtime = build_runtime(data_dir)
    gateway = runtime.gateway
    app = create_app(lambda _request: gateway, lifespan=lambda _app: runtime.background_jobs())
    send_to_stderr()  # Fluxgate's own lines (the audit log among them), as they are: JSON
    print(
        f"Fluxgate on http://{args.host}:{args.port}  model={gateway.model_name}  data={data_dir}",
        file=sys.stderr,
    )
    if gateway.model_name == "placeholder":
        print(
            "  No CLOUDFLARE_ACCOUNT_ID/CLOUDFLARE_API_TOKEN: images come from the offline "
            "placeholder generator.",
            file=sys.stderr,
        )
    if not gateway.admin_token:
        print(
            "  FLUXGATE_ADMIN_TOKEN is not set: /v1/admin is off; create keys with "
            "'fluxgate keys create --name NAME'.",
            file=sys.stderr,
        )
    if gateway.settings.public_base_url is None:
        print(
            "  warning: FLUXGATE_PUBLIC_BASE_URL is not set: signed URLs and job links take "
            "their origin from each request's Host header, which any client can set. Set it "
            "to this server's public origin when others can reach it.",
            file=sys.stderr,
        )
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    logging.getLogger("uvicorn.access").addFilter(RedactSignatures())  # after Config's setup
    uvicorn.Server(config).run()
    return 0


def _keys(args: argparse.Namespace) -> int:
    gateway = build_gateway(_data_dir(args))
    send_to_stderr()  # the audit lines of admin actions, as the server writes them
    actor = AdminActor(None, actor="cli")
    if args.keys_command == "create":
        fields: dict[str, object] = {"name": args.name, "tier": args.tier}
        if args.scope:
            fields["scopes"] = args.scope
        try:
            body = KeyCreate.model_validate(fields)
        except ValidationError as exc:  # the HTTP API's schema, and its wording
            print(f"fluxgate: {validation_error(exc.errors()).message}", file=sys.stderr)
            return 2
        token, record = asyncio.run(create_key(gateway, body, actor))
        print(f"Created {record.id} ({record.name}). This key is shown once:", file=sys.stderr)
        print(token)
    elif args.keys_command == "list":
        for record in asyncio.run(gateway.keys.list_all()):
            print(json.dumps(record.public()))
    else:
        record = asyncio.run(revoke_key_as(gateway, args.id, actor))
        print(json.dumps(record.public()))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fluxgate", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    data_help = f"data directory (default: ${DATA_DIR_VARIABLE} or ./.fluxgate)"

    serve = sub.add_parser("serve", help="run the API locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8787)
    serve.add_argument("--data-dir", help=data_help)
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    keys = sub.add_parser("keys", help="manage API keys in the local store")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope",
        action="append",
        help="repeat for several (default: images:generate and images:read)",
    )
    create.add_argument("--tier", help="a tier of the policy document")
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    for p in (create, listing, revoke):
        p.add_argument("--data-dir", help=data_help)
    keys.set_defaults(run=_keys)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ConfigError, SigningConfigError) as exc:
        print(f"fluxgate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # ApiError from keys create or revoke, for example
        message = getattr(exc, "message", None) or str(exc)
        print(f"fluxgate: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
