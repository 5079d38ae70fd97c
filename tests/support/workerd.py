"""The Worker on real workerd as a test runtime, over real HTTP.

Black-box API tests run twice: against the local runtime (the FastAPI app on the embedded
stores, in process) and against the Worker on workerd (``worker/local/stack.mjs``: wrangler's
test harness, i.e. Miniflare's KV, R2, Durable Objects, Queues, rate limiting and Cache on
the workerd binary ``scripts/prepare_workerd.py`` prepares, with the AI stand-in Worker
bound as ``AI``). One stack is started per distinct set of settings and shared by the
session's process; every test starts from an empty KV namespace and R2 bucket and a reset
stand-in (``POST /reset`` on the stack's control port), and makes its own keys, so the
Durable Objects (one per key or job) it meets are its own.

The control port reaches what is beside the Worker, never into it: the stand-in's script
(failures, latency, Llama Guard's and the classifier's verdicts) and what it received, the
KV namespace and R2 bucket as stored, the job queue's producer, a job's record through its
Durable Object, the runtime's console. workerd offers no way to move its clock, make a
binding fail, pause a queue's consumer or count KV reads from outside; a test that needs one
of those runs on the local runtime only, saying so (``runtimes("local", reason=...)``).

The doubles that reach the stand-in and the stores through the control port sit beside
their in-process counterparts (``WorkerdAI`` in :mod:`.model`, ``WorkerdStorage`` in
:mod:`.storage`, ...); the fixtures here give a test its stack. How a stack's runner is
prepared for, started and stopped is :mod:`.stack_process`, shared with the benchmark.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluxgate.service.settings import Settings

from .config import SECRETS, rate_limit_rules_of, setting_vars
from .stack_process import ROOT as ROOT
from .stack_process import StackProcess, prepare
from .stack_process import StackUnavailable as WorkerdUnavailable
from .stack_process import node as node
from .stack_process import stack_environment as stack_environment
from .stack_process import stop_group as stop_group

STACK = ROOT / "worker" / "local" / "stack.mjs"


def workerd_prerequisites() -> str | None:
    """Why the Worker cannot run on workerd here, or ``None`` when it can."""
    if node() is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "wrangler").is_dir():
        return "node_modules is missing (run `npm ci`)"
    return None


def prepare_workerd() -> str:
    """Vendor ``python_modules`` and prepare workerd (once per process, :func:`.prepare`);
    returns ``MINIFLARE_WORKERD_PATH``."""
    return prepare().launcher


# A report's user properties: how the Worker's isolate died during the test (one per way),
# and that the test ran on a stack that was checked (for the terminal summary).
ISOLATE_CRASH = "worker_isolate_crash"
ISOLATE_CHECKED = "worker_isolate_checked"
# What wrangler writes to the stack's stderr when workerd itself dies and is restarted.
RUNTIME_CRASHED = "The Workers runtime crashed"


@dataclasses.dataclass(frozen=True)
class IsolateHistory:
    """What a stack's Worker went through since the stack started: ``started``, the isolates
    that served an event (each writes one line on its first; ``src/fluxgate/edge/front/worker.py``),
    ``fatal``, the console lines only a dying isolate writes (Pyodide's fatal error, a
    stack overflow), and ``restarts``, wrangler's lines about workerd restarting."""

    started: int = 0
    fatal: tuple[str, ...] = ()
    restarts: int = 0

    def crashes_since(self, earlier: IsolateHistory) -> list[str]:
        """How the Worker died since ``earlier``, one line each (none: it never did). The
        first isolate of a stack is its start, not a crash; any later one replaced a dead
        one."""
        found = [f"fatal error on the console: {line}" for line in self.fatal[len(earlier.fatal) :]]
        if self.restarts > earlier.restarts:
            found.append(f"workerd crashed and restarted ({self.restarts - earlier.restarts}x)")
        replaced = self.started - max(earlier.started, 1)
        if replaced > 0:
            found.append(f"{replaced} new isolate(s) started: the one serving before died")
        return found


class Workerd:
    """A running ``worker/local/stack.mjs`` on free loopback ports (it has 180 s to start;
    :class:`WorkerdUnavailable` with its log if it does not).

    ``secrets`` are the Worker's secrets; one whose value is ``None`` is not set at all."""

    def __init__(
        self,
        tmp: Path,
        secrets: Mapping[str, str | None],
        settings: Mapping[str, Any],
        without: tuple[str, ...] = (),
        ratelimits: Mapping[str, tuple[int, int]] | None = None,
        workerd_args: tuple[str, ...] = (),
    ) -> None:
        """``ratelimits``: ``{BINDING: (limit, period)}``, the ``[[ratelimits]]`` bindings a
        deployer declares for the policy's rules (replacing or adding to wrangler.toml's);
        ``workerd_args``: more flags for ``workerd serve`` (the memory-snapshot ones)."""
        env = stack_environment(prepare_workerd())
        env["FLUXGATE_WORKERD_ARGS"] = workerd_arguments(workerd_args)
        args = [node() or "node", str(STACK), "--control-port", "0"]
        for table in without:
            args += ["--without", table]
        for binding, (limit, period) in (ratelimits or {}).items():
            args += ["--ratelimit", f"{binding}={limit}/{period}"]
        for name, value in settings.items():
            args += ["--var", f"{name.upper()}={var_value(value)}"]
        for name, value in secrets.items():
            if value is None:
                args += ["--var", f"{name}="]
            else:
                env[name] = value
        self.log_path = tmp / "workerd.log"
        self._process = StackProcess(
            args, env, self.log_path, name="the Worker on workerd", timeout=180
        )
        self.base: str = self._process.ready["url"]
        self.control: str = self._process.ready["control"]
        self._http = httpx.Client(base_url=self.control, timeout=60)

    def output(self) -> str:
        """What the stack printed, then the Worker's console since the last reset (all of it
        for a stack never reset)."""
        console = self.log_since_reset() if self._process.running() else ""
        return self._process.output() + console

    def call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def reset(self) -> None:
        self.call("POST", "/reset")

    def console(self) -> list[dict[str, str]]:
        """The Worker's console since the last reset: ``{"level", "message"}`` each, the
        level as Workers Logs records it (``log``, ``warn``, ``error``)."""
        entries: list[dict[str, str]] = self.call("GET", "/logs")
        return entries

    def log_since_reset(self) -> str:
        """What the Worker wrote to its console since the last reset, one entry a line."""
        return "\n".join(str(entry["message"]) for entry in self.console())

    def isolates(self) -> IsolateHistory:
        """The Worker's isolates since the stack started (see :class:`IsolateHistory`)."""
        counts = self.call("GET", "/isolates")
        restarts = self._process.output().count(RUNTIME_CRASHED)
        return IsolateHistory(counts["started"], tuple(counts["fatal"]), restarts)

    def close(self) -> list[str]:
        """Stop the stack; how its Worker's isolates died over its life, if they did."""
        crashes: list[str] = []
        if self._process.running():
            with contextlib.suppress(httpx.HTTPError, AssertionError):
                crashes = self.isolates().crashes_since(IsolateHistory())
        self._http.close()
        self._process.stop()
        return crashes


def workerd_arguments(args: tuple[str, ...]) -> str:
    """``FLUXGATE_WORKERD_ARGS``: the launcher splits it on white space, so no argument may
    hold any (the tests' temporary folders do not)."""
    for arg in args:
        if not arg or any(c.isspace() for c in arg):
            raise ValueError(f"workerd argument {arg!r} is empty or holds white space")
    return " ".join(args)


def var_value(value: Any) -> str:
    """A setting as a ``[vars]`` value on wrangler's command line (``FAST_PATH=false``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value))
    return str(value)


# What workerd names the snapshot it saves (src/pyodide/internal/snapshot.ts).
SNAPSHOT = "snapshot.bin"


def save_snapshot(folder: Path) -> tuple[str, ...]:
    """``workerd serve`` flags: take a dedicated snapshot into ``folder``, as a deploy does
    (workerd writes ``snapshot.bin`` while the Worker starts, after its top level ran)."""
    return ("--python-save-snapshot", "--python-snapshot-dir", str(folder))


def load_snapshot(folder: Path) -> tuple[str, ...]:
    """``workerd serve`` flags: restore the snapshot in ``folder``, as every cold start of a
    deployed Worker does."""
    return ("--python-load-snapshot", SNAPSHOT, "--python-snapshot-dir", str(folder))


class WorkerdPool:
    """One stack per distinct settings and secrets, started on first use, stopped at the
    end. ``get``'s secrets override the pool's; a ``None`` value leaves one unset.

    Every stack restores the Worker from a deploy-style memory snapshot, as each cold start
    on Cloudflare does: the snapshot is taken once per session (by whichever test process
    gets there first; ``snapshots`` is shared by all of them) from a stack of the base
    settings. The top level reads no ``env``, so one snapshot serves every configuration.
    At most ``keep`` stacks run at once per process; the least recently used one stops."""

    def __init__(
        self,
        tmp: Path,
        secrets: Mapping[str, str],
        base: Mapping[str, Any],
        snapshots: Path,
        keep: int = 4,
    ) -> None:
        self._tmp = tmp
        self._secrets: dict[str, str | None] = dict(secrets)
        self._base = dict(base)
        self._snapshots = snapshots
        self._keep = keep
        self._stacks: dict[str, Workerd] = {}
        self._started = 0
        self._retired: list[str] = []  # crashes of the stacks stopped to make room

    def _restore_flags(self) -> tuple[str, ...]:
        self._snapshots.mkdir(parents=True, exist_ok=True)
        with (self._snapshots / "take.lock").open("w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if not (self._snapshots / SNAPSHOT).is_file():
                folder = self._tmp / "snapshot-taker"
                folder.mkdir(exist_ok=True)
                taker = Workerd(
                    folder, self._secrets, self._base, workerd_args=save_snapshot(self._snapshots)
                )
                taker.close()
                if not (self._snapshots / SNAPSHOT).is_file():
                    raise WorkerdUnavailable(
                        f"no snapshot was written:\n{taker.log_path.read_text()}"
                    )
        return load_snapshot(self._snapshots)

    def get(
        self,
        settings: Mapping[str, Any],
        secrets: Mapping[str, str | None] | None = None,
        without: tuple[str, ...] = (),
        ratelimits: Mapping[str, tuple[int, int]] | None = None,
    ) -> Workerd:
        """``without``: wrangler.toml tables left out (``("images",)``: no Images binding);
        ``ratelimits``: rate-limit bindings declared (see :class:`Workerd`)."""
        merged = {**self._base, **settings}
        keys = {**self._secrets, **(secrets or {})}
        limits = dict(ratelimits or {})
        key = json.dumps([merged, keys, sorted(without), limits], sort_keys=True, default=str)
        stack = self._stacks.pop(key, None)
        if stack is None:
            if len(self._stacks) >= self._keep:
                oldest = next(iter(self._stacks))
                self._retired += self._stacks.pop(oldest).close()
            folder = self._tmp / f"workerd-{self._started}"
            folder.mkdir()
            self._started += 1
            restore = self._restore_flags()
            stack = Workerd(folder, keys, merged, without, limits, workerd_args=restore)
        self._stacks[key] = stack  # the most recently used last
        return stack

    def discard(self, stack: Workerd) -> None:
        """Stop ``stack`` (its Worker crashed, which was reported): workerd restarted, which
        leaves the stack's handles on its bindings unusable, so the next test gets a new
        one."""
        self._stacks = {key: kept for key, kept in self._stacks.items() if kept is not stack}
        stack.close()

    def close(self) -> list[str]:
        """Stop every stack; how their Workers' isolates died over their lives, if they
        did (see :meth:`IsolateHistory.crashes_since`)."""
        crashes, self._retired = self._retired, []
        for stack in self._stacks.values():
            crashes += stack.close()
        return crashes


@pytest.fixture(scope="session")
def workerd_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerdPool]:
    # Policy changes through the admin API must be seen at once, as the local gateway's
    # policy store (cache_seconds=0) sees them.
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # all processes'
    pool = WorkerdPool(
        tmp_path_factory.mktemp("workerd"),
        {name: value for name, value in SECRETS.items() if value is not None},
        {"POLICY_CACHE_SECONDS": 0},
        snapshots=shared / "workerd-pool-snapshot",
    )
    yield pool
    crashes = pool.close()
    if crashes:  # e.g. in work a test left running after its last answer
        pytest.fail("the Worker's isolate crashed on workerd:\n" + "\n".join(crashes))


@pytest.fixture
def workerd(
    request: pytest.FixtureRequest,
    workerd_pool: WorkerdPool,
    settings: Settings,
    secrets: dict[str, str | None],
    unbound: tuple[str, ...],
) -> Iterator[Workerd]:
    """The Worker on workerd for this test's settings and secrets, with empty stores.

    The test fails if the Worker's isolate died while it ran (:class:`IsolateHistory`: a
    fatal error on the console, workerd restarting, or a new isolate replacing the one
    that served before), even if every answer looked right."""
    reason = workerd_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Worker cannot run on workerd in CI: {reason}")
        pytest.skip(f"the Worker cannot run on workerd here: {reason}")
    bindings = {
        f"RATE_LIMIT_{name.upper()}": (rule["limit"], rule["period"])
        for name, rule in rate_limit_rules_of(request).items()
    }
    stack = workerd_pool.get(setting_vars(settings), secrets, unbound, bindings)
    stack.reset()
    before = stack.isolates()
    request.node.user_properties.append((ISOLATE_CHECKED, True))
    yield stack
    crashes = stack.isolates().crashes_since(before)
    if crashes:  # the answers may have looked right, but a request killed the isolate
        for crash in crashes:
            request.node.user_properties.append((ISOLATE_CRASH, crash))
        workerd_pool.discard(stack)
        pytest.fail("the Worker's isolate crashed during this test:\n" + "\n".join(crashes))
