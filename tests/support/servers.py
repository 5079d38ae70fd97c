"""A real server process on a free loopback port, for the end-to-end tests: `fluxgate serve`
(the local runtime) or the Worker on workerd as `npm run worker` serves it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx
import pytest

from .workerd import (
    ROOT,
    node,
    prepare_workerd,
    stack_environment,
    stop_group,
    workerd_arguments,
    workerd_prerequisites,
)

DEV = ROOT / "worker" / "local" / "dev.mjs"

ADMIN = "local-admin-token-0123456789abcdef"
SIGNING_KEYS = "e2e=" + "k" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    env: dict[str, str]
    output: Callable[[], str]  # what the server process wrote (its log)
    make_key: Callable[[str, tuple[str, ...]], str]
    crash: Callable[[], None]  # kill -9, with every process it started: nothing runs on

    def new_key(self, name: str = "test", *scopes: str) -> str:
        return self.make_key(name, scopes)


def _cli_key(data_dir: Path, env: dict[str, str]) -> Callable[[str, tuple[str, ...]], str]:
    """Keys made by `fluxgate keys create` in the server's data directory."""

    def make(name: str, scopes: tuple[str, ...]) -> str:
        extra = [a for scope in scopes for a in ("--scope", scope)]
        made = cli("keys", "create", "--name", name, "--data-dir", str(data_dir), *extra, env=env)
        assert made.returncode == 0, made.stderr
        return made.stdout.strip()

    return make


def _admin_key(base: str) -> Callable[[str, tuple[str, ...]], str]:
    """Keys made through the admin API (the Worker has no CLI)."""

    def make(name: str, scopes: tuple[str, ...]) -> str:
        body: dict[str, object] = {"name": name, **({"scopes": list(scopes)} if scopes else {})}
        made = httpx.post(
            f"{base}/v1/admin/keys",
            json=body,
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        )
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    return make


def _log_file(path: Path) -> IO[str]:
    """The server's output file, which the test reads while the server writes: opened to
    append, so that the server's writes land at the end whatever the reader's ``seek(0)``
    did to the offset they share (a plain "w+" let a write land at the start, over what was
    there, and the next read could begin inside a character), and decoded forgivingly (the
    last character may be half written when it is read)."""
    return path.open("a+", encoding="utf-8", errors="replace")


def _read(log: IO[str]) -> Callable[[], str]:
    def read() -> str:
        log.flush()
        log.seek(0)
        return log.read()

    return read


@contextmanager
def serve(runtime: str, tmp: Path, *, latency: float = 0, **settings: str) -> Iterator[Server]:
    """A server of either runtime, with the placeholder model and the admin token set;
    ``latency``: seconds each placeholder image takes. The same ``tmp`` again is the same
    server after a restart: its stores are kept there."""
    if runtime == "worker":
        with worker_server(tmp, workerd_args=(), latency=latency, **settings) as server:
            yield server
    else:
        with local_server(tmp, latency=latency, **settings) as server:
            yield server


def _kill_group(proc: subprocess.Popen[bytes]) -> Callable[[], None]:
    def crash() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    return crash


@contextmanager
def worker_server(
    tmp: Path, *, workerd_args: tuple[str, ...] = (), latency: float = 0, **settings: str
) -> Iterator[Server]:
    """``npm run worker`` (``wrangler dev`` on the prepared workerd) with the given [vars]
    and its own state folder; ``workerd_args``: more flags for ``workerd serve`` (the
    memory-snapshot ones). Unlike the tests' pooled stacks (wrangler's test harness, which
    sends the Worker's outbound ``fetch`` through Node's), this is workerd's own network."""
    reason = workerd_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Worker cannot run on workerd in CI: {reason}")
        pytest.skip(f"the Worker cannot run on workerd here: {reason}")
    prepare_workerd()  # vendoring and the bundle, before the clock of the start below runs
    port = free_port()
    env = stack_environment("")
    env.pop("MINIFLARE_WORKERD_PATH")  # dev.mjs prepares and sets it, as for a user
    secrets = {"ADMIN_TOKEN": ADMIN, "URL_SIGNING_KEYS": SIGNING_KEYS}
    env.update(secrets, FLUXGATE_WORKERD_ARGS=workerd_arguments(workerd_args))
    if latency:
        env["FLUXGATE_PLACEHOLDER_LATENCY_SECONDS"] = str(latency)
    env["PYTHON"] = sys.executable
    args = [node() or "node", str(DEV), "--port", str(port), "--persist-to", str(tmp / "state")]
    args += ["--inspector-port", str(free_port()), "--show-interactive-dev-session=false"]
    rate = settings.get("rate_limit_per_minute")
    if rate is not None:  # the deployer sizes the [[ratelimits]] binding to match
        args += ["--ratelimit", f"RATE_LIMIT_STANDARD={rate}/60"]
    for name, value in settings.items():
        args += ["--var", f"{name.upper()}:{value}"]
    log = _log_file(tmp / "wrangler-dev.log")
    proc = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # wrangler's "Ready on", not a request: a test of a cold isolate sees its first one.
        _wait_for_line(f"Ready on {base}", proc, log, timeout=180)
        yield Server(
            base, {**os.environ, **secrets}, _read(log), _admin_key(base), _kill_group(proc)
        )
    finally:
        stop_group(proc)  # dev.mjs, wrangler and Miniflare's workerd processes
        log.close()


def _wait_for_line(line: str, proc: subprocess.Popen[bytes], log: IO[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while line not in _read(log)():
        if time.monotonic() > deadline or proc.poll() is not None:
            pytest.fail(f"server did not start:\n{_read(log)()}")
        time.sleep(0.1)


def _wait_healthy(base: str, proc: subprocess.Popen[bytes], log: IO[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"server did not start:\n{log.read()}")
        time.sleep(0.1)


@contextmanager
def local_server(
    tmp: Path, *, log_level: str = "info", latency: float = 0, **settings: str
) -> Iterator[Server]:
    """Start `fluxgate serve` (placeholder model, admin token set); stop it afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "FLUXGATE_ADMIN_TOKEN": ADMIN,
        **{f"FLUXGATE_{k.upper()}": v for k, v in settings.items()},
    }
    if latency:
        env["FLUXGATE_PLACEHOLDER_LATENCY_SECONDS"] = str(latency)
    env.pop("CLOUDFLARE_API_TOKEN", None)
    data_dir = tmp / "data"
    log = _log_file(tmp / "server.log")
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
        _wait_healthy(base, proc, log, timeout=30)
        yield Server(base, env, _read(log), _cli_key(data_dir, env), proc.kill)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
