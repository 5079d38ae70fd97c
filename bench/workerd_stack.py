"""A benchmark stack on real workerd, and the CPU its workerd processes have used.

``bench/workerd_stack.mjs`` runs wrangler's test harness (Miniflare on the workerd that
``scripts/prepare_workerd.py`` prepares). Its workerd processes are its children (with the
harness's proxy, a ``wrangler dev`` stack has two: the proxy's and the runtime's); their
CPU is what the operating system counts in ``/proc/<pid>/stat``: user plus system time of
every thread, in clock ticks. Nothing of the client (this process) or of the Node runner
is counted.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
NODE = ROOT / "node_modules" / "node" / "bin" / "node"
RUNNER = ROOT / "bench" / "workerd_stack.mjs"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Prepared:
    """What the stacks run on: ``MINIFLARE_WORKERD_PATH`` and the versions it stands for."""

    launcher: str
    workerd: str
    pyodide: str
    wrangler: str


def _script(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout.strip()


def prepare() -> Prepared:
    """Vendor ``python_modules`` unless it is vendored from this lock already, and prepare
    workerd (both offline; both safe beside test processes doing the same)."""
    _script("scripts/vendor_worker.py", "--if-changed")
    info = json.loads(_script("scripts/prepare_workerd.py", "--json"))
    version = subprocess.run(
        [info["command"], "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wrangler = json.loads((ROOT / "node_modules" / "wrangler" / "package.json").read_text())
    return Prepared(info["command"], version, info["pyodide"], wrangler["version"])


def _stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pid: int) -> int:
    """utime + stime of every thread of the process, live or exited, in clock ticks."""
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12])


def started_at(pid: int) -> float:
    """When the process started, in seconds on ``CLOCK_BOOTTIME`` (tick resolution)."""
    return int(_stat_fields(pid)[19]) * TICK_MS / 1000


def _started_ticks(pid: int) -> int | None:
    try:
        return int(_stat_fields(pid)[19])
    except (OSError, ValueError, IndexError):
        return None


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == parent:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return sorted(found)


def is_workerd(pid: int) -> bool:
    try:
        return b"workerd" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False


class Stack:
    """``bench/workerd_stack.mjs`` on free loopback ports, until closed.

    ``workerd_args`` go to ``workerd serve`` (the memory-snapshot flags). ``spawned`` is
    when the runner was started (``time.monotonic``), ``ready`` when it reported serving.
    """

    def __init__(
        self, prepared: Prepared, log: Path, floors: bool = False, workerd_args: str = ""
    ) -> None:
        self.admin_token = secrets.token_urlsafe(32)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "WRANGLER_"))
        }
        env.update(
            MINIFLARE_WORKERD_PATH=prepared.launcher,
            CLOUDFLARE_CF_FETCH_ENABLED="false",
            WRANGLER_SEND_METRICS="false",
            NO_COLOR="1",
            FLUXGATE_WORKERD_ARGS=workerd_args,
            ADMIN_TOKEN=self.admin_token,
            URL_SIGNING_KEYS=f"bench={secrets.token_urlsafe(36)}",
        )
        self._log: IO[str] = log.open("w")
        self.spawned = time.monotonic()
        self._proc = subprocess.Popen(
            [str(NODE), str(RUNNER), *(["--floors"] if floors else [])],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        try:
            event = self._wait_ready(log)
        except BaseException:
            self.close()
            raise
        self.ready = time.monotonic()
        self.url: str = event["url"]
        self.hosts: dict[str, str] = event["hosts"]
        self.pids = [pid for pid in children(self._proc.pid) if is_workerd(pid)]
        threading.Thread(target=self._drain, daemon=True).start()

    def _wait_ready(self, log: Path) -> dict[str, Any]:
        assert self._proc.stdout is not None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = self._proc.stdout.readline()
            if not line:
                break
            try:
                event = json.loads(line)
            except ValueError:
                self._log.write(line)
                continue
            if isinstance(event, dict) and event.get("event") == "ready":
                return event
        self._log.flush()
        raise RuntimeError(f"the benchmark stack did not start:\n{log.read_text()[-4000:]}")

    def _drain(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._log.write(line)

    def ticks(self) -> list[int]:
        """Each workerd process's CPU so far, in clock ticks (in ``self.pids`` order)."""
        return [cpu_ticks(pid) for pid in self.pids]

    def roles(self) -> list[str]:
        """``runtime`` for the process that runs the Workers (the largest), ``proxy`` else."""
        sizes = [resident_kib(pid) for pid in self.pids]
        return ["runtime" if size == max(sizes) else "proxy" for size in sizes]

    def close(self) -> None:
        """SIGTERM to the runner (it closes the harness), then SIGKILL to whatever of its
        children is left: only processes this stack started."""
        started = {pid: _started_ticks(pid) for pid in children(self._proc.pid)}
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        for pid, ticks in started.items():
            if ticks is not None and _started_ticks(pid) == ticks:  # not a reused pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._log.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
