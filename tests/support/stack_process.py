"""A workerd stack's Node runner as a process: prepared for, started, waited for, stopped.

The tests' stacks (:mod:`.workerd`, ``worker/local/stack.mjs``) and the benchmark's
(``bench/workerd_stack.py``, ``bench/workerd_stack.mjs``) are started the same way, here:
``scripts/vendor_worker.py`` and ``scripts/prepare_workerd.py`` prepare the workerd the
runner is given (``MINIFLARE_WORKERD_PATH``); the runner runs in a session (a process group)
of its own, so that stopping the group stops the workerd processes Miniflare started as
well; it says it serves with one JSON line on stdout, ``{"event": "ready", ...}`` (where it
serves), and everything else it prints goes to a log.

No pytest here: the benchmark imports this module too (``bench/workerd_stack.py`` puts the
repository root on ``sys.path``), and a stack that does not start is the same error for both.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]


class StackUnavailable(RuntimeError):
    """A stack could not be prepared or did not start; the message holds what it printed."""


def node() -> str | None:
    """The Node that the npm scripts use (pinned in package.json), else the system's."""
    pinned = ROOT / "node_modules" / "node" / "bin" / "node"
    return str(pinned) if pinned.exists() else shutil.which("node")


def run_script(*args: str) -> str:
    """A Python script of the repository, run from its root; what it printed."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise StackUnavailable(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Prepared:
    """What a stack runs on: ``launcher``, the command ``scripts/prepare_workerd.py`` writes
    (``MINIFLARE_WORKERD_PATH``), and the Pyodide its bundle is built from."""

    launcher: str
    pyodide: str


@functools.cache
def prepare() -> Prepared:
    """Vendor ``python_modules`` from the lock (unless it already is) and prepare workerd,
    both offline. Both are safe beside other processes doing the same (parallel test
    processes, a benchmark); once per process is enough."""
    run_script("scripts/vendor_worker.py", "--if-changed")
    info = json.loads(run_script("scripts/prepare_workerd.py", "--json"))
    return Prepared(info["command"], info["pyodide"])


def stack_environment(launcher: str) -> dict[str, str]:
    """The environment wrangler needs offline, on the prepared workerd: nothing of the
    account or the wrangler configuration of whoever runs it, and none of the Worker's
    secrets (a stack sets its own)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("CLOUDFLARE_", "WRANGLER_"))
        and name not in ("ADMIN_TOKEN", "URL_SIGNING_KEYS")
    }
    env.update(
        MINIFLARE_WORKERD_PATH=launcher,
        CLOUDFLARE_CF_FETCH_ENABLED="false",
        WRANGLER_SEND_METRICS="false",
        NO_COLOR="1",
    )
    return env


class StackProcess:
    """A stack's runner, from its start until :meth:`stop`.

    ``args`` is the runner's command line (``node`` first), ``log`` the file that receives
    its stderr and every stdout line but the ready event. The constructor returns once the
    runner said it serves: ``ready`` is that event, ``spawned`` and ``ready_at`` when it was
    started and when it said so (``time.monotonic``). A runner that exits, or says nothing,
    within ``timeout`` seconds is stopped, and :class:`StackUnavailable` says ``name`` did
    not start, with the log."""

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str],
        log: Path,
        *,
        name: str,
        timeout: float,
    ) -> None:
        self.log_path = log
        self._log: IO[str] = log.open("w+")
        self._drain = threading.Thread(target=self._copy_stdout, daemon=True)
        self._expired = threading.Event()
        self.spawned = time.monotonic()
        # A session of its own: stopping its process group stops Miniflare's workerd too.
        self._proc = subprocess.Popen(
            list(args),
            cwd=ROOT,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        try:
            event = self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        if event is None:
            self.stop()
            raise StackUnavailable(f"{name} did not start:\n{log.read_text()}")
        self.ready: dict[str, Any] = event
        self.ready_at = time.monotonic()
        self._drain.start()

    @property
    def pid(self) -> int:
        """The runner's process id (its workerd processes are its children)."""
        return self._proc.pid

    def running(self) -> bool:
        return self._proc.poll() is None

    def output(self) -> str:
        """What the runner printed so far (its stderr and stdout)."""
        self._log.flush()
        return self.log_path.read_text()

    def _wait_ready(self, timeout: float) -> dict[str, Any] | None:
        """The ready event, or ``None`` when the runner ended or ``timeout`` passed first
        (a runner that hangs without a word is stopped then, which ends its stdout)."""
        watchdog = threading.Timer(timeout, self._expire)
        watchdog.start()
        try:
            event = self._read_until_ready()
        finally:
            watchdog.cancel()
            watchdog.join()
        return None if self._expired.is_set() else event  # too late does not count

    def _read_until_ready(self) -> dict[str, Any] | None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and event.get("event") == "ready":
                return event
            self._log.write(line)
        return None

    def _expire(self) -> None:
        self._expired.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGTERM)

    def _copy_stdout(self) -> None:
        assert self._proc.stdout is not None
        # The log is closed once the group is stopped: what came after is dropped.
        with contextlib.suppress(ValueError):
            for line in self._proc.stdout:
                self._log.write(line)

    def stop(self) -> None:
        """Stop the runner and everything it started (once; later calls do nothing)."""
        if self._log.closed:
            return
        stop_group(self._proc)
        if self._drain.is_alive():
            self._drain.join(timeout=10)
        self._log.close()


def stop_group(proc: subprocess.Popen[Any], grace: float = 30) -> None:
    """Stop a process started in a session of its own, and everything it started: SIGTERM
    to the group (a runner closes its harness), SIGKILL to whatever of it is left after
    ``grace`` seconds or once the leader has exited. The leader is reaped last, so its
    group's id cannot have been given to another process by then."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while not _exited(proc) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _exited(proc: subprocess.Popen[Any]) -> bool:
    """Whether the process has exited, without reaping it."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
