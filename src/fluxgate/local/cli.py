"""``fluxgate``: run the gateway locally and manage its API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from ..auth import ALL_SCOPES
from ..settings import ConfigError
from ..signing import SigningConfigError
from .runtime import background_jobs, build_gateway, data_dir_from


def _serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        print(
            "fluxgate serve needs the local extra: pip install 'fluxgate[local]'", file=sys.stderr
        )
        return 2
    from ..app import create_app
    from ..logs import send_to_stderr

    gateway = build_gateway(data_dir_from(args.data_dir, os.environ))
    app = create_app(lambda _request: gateway, lifespan=lambda _app: background_jobs(gateway))
    send_to_stderr()  # Fluxgate's own lines (the audit log among them), as they are: JSON
    print(
        f"Fluxgate on http://{args.host}:{args.port}  model={gateway.model.name}  "
        f"data={data_dir_from(args.data_dir, os.environ)}",
        file=sys.stderr,
    )
    if gateway.model.name == "placeholder":
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
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _keys(args: argparse.Namespace) -> int:
    gateway = build_gateway(data_dir_from(args.data_dir, os.environ))
    if args.keys_command == "create":
        scopes = args.scope or ["images:generate", "images:read"]
        unknown = set(scopes) - set(ALL_SCOPES)
        if unknown:
            print(f"fluxgate: unknown scope(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        token, record = asyncio.run(gateway.keys.create(args.name, scopes=scopes, tier=args.tier))
        print(f"Created {record.id} ({record.name}). This key is shown once:", file=sys.stderr)
        print(token)
    elif args.keys_command == "list":
        for record in asyncio.run(gateway.keys.list()):
            print(json.dumps(record.public()))
    else:
        record = asyncio.run(gateway.keys.revoke(args.id))
        print(json.dumps(record.public()))
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="fluxgate", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    data_help = "data directory (default: $FLUXGATE_DATA_DIR or ./.fluxgate)"

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
        return args.run(args)
    except (ConfigError, SigningConfigError) as exc:
        print(f"fluxgate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # ApiError from keys revoke, for example
        message = getattr(exc, "message", None) or str(exc)
        print(f"fluxgate: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
