"""`fluxgate serve` as a real process on a free loopback port, for the end-to-end tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

ADMIN = "local-admin-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fluxgate.local.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Server:
    base: str
    data_dir: Path
    env: dict[str, str]
    log: IO[str]

    def new_key(self, name: str = "test", *scopes: str) -> str:
        extra = [a for scope in scopes for a in ("--scope", scope)]
        made = cli(
            "keys", "create", "--name", name, "--data-dir", str(self.data_dir), *extra, env=self.env
        )
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


@contextmanager
def local_server(tmp: Path, *, log_level: str = "info", **settings: str) -> Iterator[Server]:
    """Start `fluxgate serve` (placeholder model, admin token set); stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "FLUXGATE_ADMIN_TOKEN": ADMIN,
        **{f"FLUXGATE_{k.upper()}": v for k, v in settings.items()},
    }
    env.pop("CLOUDFLARE_API_TOKEN", None)
    data_dir = tmp / "data"
    log = (tmp / "server.log").open("w+")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fluxgate.local.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            log_level,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"server did not start:\n{log.read()}")
            time.sleep(0.1)
        yield Server(base, data_dir, env, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
