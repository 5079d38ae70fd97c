"""The local runtime as the benchmark runs it: `fluxgate serve` plus two bench-only routes.

    python bench/server.py --port 9000 --data-dir DIR [--ai-latency 0.5] [--no-coalescing]
                           [--static DIR]

The model is the placeholder AI double (the binding's multipart contract, real PNGs) with
an added latency. `/bench/floor` returns a constant JSON from the same server: the floor a
cache hit is compared with. `/bench/stats` reports the model calls. With `--static DIR`
the process is instead a plain static file server (Starlette's StaticFiles on the same
uvicorn): the baseline for file delivery.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import uvicorn


def realistic_ai(latency: float):
    """The placeholder AI double, answering with PNGs of a real image's size.

    A FLUX.2 1024x768 PNG weighs about 1.2-1.6 MB; the placeholder's flat colours compress
    to ~10 KB, which would flatter every per-byte cost (base64, hashing, storage). This one
    returns a noisy image of the requested size (~1.5 MB at 1024x768), made distinct per
    request with a text chunk, so each miss stores its own object.
    """
    import os as _os
    import struct
    import zlib

    from fluxgate.local.placeholder import PlaceholderAI

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    class RealisticAI(PlaceholderAI):
        _bodies: dict[tuple[int, int], bytes] = {}

        def render(self, width: int, height: int, fingerprint: bytes) -> bytes:
            body = self._bodies.get((width, height))
            if body is None:
                noise = _os.urandom(width * 3 * height // 2)
                rows = b"".join(
                    b"\x00"
                    + noise[(y % (height // 2)) * width * 3 // 2 :][: width * 3].ljust(
                        width * 3, b"\x80"
                    )
                    for y in range(height)
                )
                header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
                body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1))
                self._bodies[(width, height)] = body
            return (
                b"\x89PNG\r\n\x1a\n"
                + body[:25]
                + chunk(b"tEXt", b"id\x00" + fingerprint.hex().encode())
                + body[25:]
                + chunk(b"IEND", b"")
            )

    return RealisticAI(latency=latency)


def gateway_app(args: argparse.Namespace):
    from fluxgate.api.app import create_app
    from fluxgate.local.runtime import LocalRuntime, local_ports
    from fluxgate.model.coalesce import NoCoalescing
    from fluxgate.model.port import MultipartImageModel

    if args.placeholder_images:
        from fluxgate.local.placeholder import PlaceholderAI

        ai = PlaceholderAI(latency=args.ai_latency)
    else:
        ai = realistic_ai(args.ai_latency)
    env = {
        **os.environ,
        "FLUXGATE_ADMIN_TOKEN": "bench-admin-token-0123456789-abcdef",
        "FLUXGATE_RATE_LIMIT_PER_MINUTE": "1000000",
        "FLUXGATE_DAILY_BUDGET_USD": "1000000",
    }
    model = MultipartImageModel(ai)
    ports = local_ports(Path(args.data_dir), env, model=model)
    if args.no_coalescing:
        ports = dataclasses.replace(ports, coalescer=NoCoalescing())
    gateway = LocalRuntime.of(ports).gateway
    app = create_app(lambda _request: gateway)

    @app.get("/bench/floor", include_in_schema=False)
    async def floor() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/bench/stats", include_in_schema=False)
    async def stats() -> dict[str, int]:
        return {"model_calls": ai.calls}

    return app


def static_app(directory: str):
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.staticfiles import StaticFiles

    return Starlette(routes=[Mount("/", app=StaticFiles(directory=directory))])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", default=".bench-data")
    parser.add_argument("--ai-latency", type=float, default=0.0)
    parser.add_argument("--no-coalescing", action="store_true")
    parser.add_argument(
        "--placeholder-images",
        action="store_true",
        help="flat ~10 KB PNGs instead of realistic ~1.2 MB ones",
    )
    parser.add_argument("--static")
    args = parser.parse_args()
    app = static_app(args.static) if args.static else gateway_app(args)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
