"""A benchmark stack on real workerd, and the CPU its workerd processes have used.

``bench/workerd_stack.mjs`` runs wrangler's test harness (Miniflare on the workerd that
``scripts/prepare_workerd.py`` prepares). Its workerd processes are its children (with the
harness's proxy, a ``wrangler dev`` stack has two: the proxy's and the runtime's); their
CPU is what the operating system counts in ``/proc/<pid>/stat``: user plus system time of
every thread, in clock ticks. Nothing of the client (this process) or of the Node runner
is counted. The runner is prepared for, started and stopped as the tests' stacks are
(``tests/support/stack_process.py``).

The Worker signs C2PA Content Credentials into every image it stores, as a deployment
with a signing identity does: each stack gets one of its own, a throwaway chain made here
(a P-256 leaf under an intermediate, as a certificate authority issues one) by the tests'
chain maker (``tests/support/c2pa_chain.py``).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
# The stacks' runners start as the tests' do (tests/support/stack_process.py): every bench
# module that starts one imports it through this module, so the root is put on the path
# once, here.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tests.support.c2pa_chain import issue_chain  # noqa: E402 - root on the path
from tests.support.stack_process import Prepared as Prepared  # noqa: E402
from tests.support.stack_process import (  # noqa: E402
    StackProcess,
    node,
    stack_environment,
)
from tests.support.stack_process import prepare as prepare  # noqa: E402

RUNNER = ROOT / "bench" / "workerd_stack.mjs"
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")
# The floors a stack can run alone (``Stack(only=...)``): no Worker, no stand-in.
Floor = Literal["js_floor", "py_floor"]


def versions(prepared: Prepared) -> dict[str, str]:
    """What the figures were measured on: workerd's, Pyodide's and wrangler's versions."""
    workerd = subprocess.run(
        [prepared.launcher, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    wrangler = json.loads((ROOT / "node_modules" / "wrangler" / "package.json").read_text())
    return {"workerd": workerd, "pyodide": prepared.pyodide, "wrangler": wrangler["version"]}


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
    """``bench/workerd_stack.mjs`` on free loopback ports, until closed (it has 300 s to
    start; :class:`~tests.support.stack_process.StackUnavailable` with its log if not).

    ``workerd_args`` go to ``workerd serve`` (the memory-snapshot flags); ``floors`` adds
    the floors and the Worker's copies (``hosts`` names them); ``only`` runs that floor
    alone instead, without the Worker or the stand-in (so that a Python memory snapshot is
    the floor's; ``hosts`` names it, though every request reaches it); ``python_profile``
    serves the Worker with a Python profiler (``bench/workerd_pyprofile.py``). ``spawned`` is when the
    runner was started (``time.monotonic``), ``ready`` when it reported serving; ``pids``
    are its workerd processes, whose CPU :meth:`ticks` counts.
    """

    def __init__(
        self,
        prepared: Prepared,
        log: Path,
        floors: bool = False,
        workerd_args: str = "",
        only: Floor | None = None,
        python_profile: bool = False,
    ) -> None:
        if floors and only:
            raise ValueError("a stack runs either the floors beside the Worker or one alone")
        self.admin_token = secrets.token_urlsafe(32)
        identity = issue_chain(with_intermediate=True)
        env = stack_environment(prepared.launcher)
        env.update(
            FLUXGATE_WORKERD_ARGS=workerd_args,
            ADMIN_TOKEN=self.admin_token,
            URL_SIGNING_KEYS=f"bench={secrets.token_urlsafe(36)}",
            C2PA_SIGNING_KEY=identity.key_pem,
            C2PA_CERTIFICATE_CHAIN=identity.chain_pem,
        )
        args = [
            node() or "node",
            str(RUNNER),
            *(["--floors"] if floors else []),
            *(["--only", only] if only else []),
            *(["--python-profile"] if python_profile else []),
        ]
        self._process = StackProcess(args, env, log, name="the benchmark stack", timeout=300)
        self.spawned = self._process.spawned
        self.ready = self._process.ready_at
        self.url: str = self._process.ready["url"]
        self.hosts: dict[str, str] = self._process.ready["hosts"]
        self.pids = [pid for pid in children(self._process.pid) if is_workerd(pid)]

    def ticks(self) -> list[int]:
        """Each workerd process's CPU so far, in clock ticks (in ``self.pids`` order)."""
        return [cpu_ticks(pid) for pid in self.pids]

    def roles(self) -> list[str]:
        """``runtime`` for the process that runs the Workers (the largest), ``proxy`` else."""
        sizes = [resident_kib(pid) for pid in self.pids]
        return ["runtime" if size == max(sizes) else "proxy" for size in sizes]

    def close(self) -> None:
        """Stop the runner and its workerd processes (the whole process group)."""
        self._process.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
