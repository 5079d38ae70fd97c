"""The module walk of one request: which of Fluxgate's modules it enters, from where.

A design measure, not a timing. While a :class:`Walk` is active, every call that crosses
from one ``fluxgate`` module into another is an *entry* of the callee's module (a coroutine
resuming after an ``await`` is not a new entry; calls within a module are not entries). An
entry that goes on into other modules is a *step* of the walk; one that does not (a base64
helper, a dataclass) is a *leaf*.

The layering goal, "each module entered once on the way down", is checked on the chains of
the walk: the steps from the request's entry down to each leaf. A *re-entry* is a module
entered again on its own chain (it called something that called back into it: a callback
up the layers); a *climb* is a call from one of the core's layers into a higher one. A call
from the core into a runtime's module is not a climb: the layout test forbids the core to
import the runtimes, so such a call can only be through a port the core declares (KV, the
request body's reader, the gateway's resolver), which the runtime implements. A *return*
is a step into a module already stepped through by an earlier sibling (an orchestrator
calling the same module at two of its steps): reported, not a fault.

Plain Python with no imports from the project or the test suite, so that the Pyodide
harness (``tests/pyodide/cases.py``) walks the Worker's entry with the same code that
``bench/walk.py`` uses on the local runtime. :data:`LAYERS` is also the layout test's.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

# The core's layers, lowest first: a module may import from its own layer and below.
LAYERS = [
    ("fluxgate.errors", "fluxgate.request_context"),
    ("fluxgate.imaging",),
    ("fluxgate.model",),
    ("fluxgate.store",),
    ("fluxgate.provenance",),
    ("fluxgate.delivery",),
    ("fluxgate.access",),
    ("fluxgate.policy",),
    ("fluxgate.jobs",),
    ("fluxgate.listings",),
    ("fluxgate.service",),
    ("fluxgate.api",),
    ("fluxgate.composition",),
]
# The runtimes sit on top; each may use the layers up to the one named, never the other
# runtime. The Workers bindings are adapters of the core's ports: the API layer is not theirs.
RUNTIMES = {
    "fluxgate.edge.ffi": "fluxgate.service",
    "fluxgate.edge.bindings": "fluxgate.service",
    "fluxgate.edge.front": "fluxgate.composition",
    "fluxgate.local": "fluxgate.composition",
}


def layer(module: str) -> int:
    """The rank of ``module`` in :data:`LAYERS`; a runtime's module ranks above them all."""
    for index, names in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return index
    return len(LAYERS)


@dataclass
class Entry:
    module: str
    caller: str | None
    parent: int | None
    calls_on: bool = False  # it entered other modules in turn: a step, not a leaf


@dataclass
class Summary:
    """What a walk found: its steps per module, its re-entries and climbs (each as the
    chain of modules, callee first), its returns, its leaves."""

    steps: Counter[str] = field(default_factory=Counter)
    re_entries: list[list[str]] = field(default_factory=list)
    climbs: list[tuple[str, str]] = field(default_factory=list)
    leaves: int = 0
    tree: list[str] = field(default_factory=list)  # the steps, indented by depth, in order

    @property
    def returns(self) -> int:
        return sum(n - 1 for n in self.steps.values())

    def report(self, name: str) -> str:
        lines = [
            f"## {name}: {sum(self.steps.values())} steps in {len(self.steps)} modules, "
            f"{len(self.re_entries)} re-entries, {len(self.climbs)} climbs, {self.returns} "
            f"returns, {self.leaves} leaf calls"
        ]
        lines += [f"  {n:3d}  {m}" for m, n in self.steps.most_common()]
        lines += ["  re-entry: " + " <- ".join(chain) for chain in self.re_entries]
        lines += [f"  climb: {caller} -> {callee}" for caller, callee in self.climbs]
        return "\n".join(lines)

    def walk(self) -> str:
        """The steps in the order they were taken, each under the step that made it."""
        return "\n".join(self.tree)


class Walk:
    """Entries into ``fluxgate`` modules while active (this thread only). A coroutine run
    as a task of its own (``gather``, ``create_task``, ``waitUntil``) is walked as a call
    of the module that made the task: the loop's ``create_task`` notes who did.

    ``boundaries``: modules whose frames stand for a call between isolates (the Pyodide
    harness's ``_workerd_dispatch``, which calls a Durable Object's method or the Worker's
    entry as workerd does). What runs below one is its own walk, not a call of the code that
    sent the request: in production it runs in another isolate."""

    def __init__(self, boundaries: tuple[str, ...] = ()) -> None:
        self._boundaries = boundaries
        self.entries: list[Entry] = []
        self._entry_of: dict[int, int | None] = {}  # frame id -> the entry it runs in
        self._spawned: dict[int, int | None] = {}  # a task's first frame -> its maker's entry
        self._frames: list[FrameType] = []  # kept alive, so that frame ids stay unique
        self._loop: asyncio.AbstractEventLoop | None = None

    def _nearest(self, frame: FrameType | None) -> FrameType | None:
        """The closest ``fluxgate`` frame at or above ``frame``, this side of a boundary."""
        while frame is not None:
            module = self._module(frame)
            if module.startswith("fluxgate"):
                return frame
            if module in self._boundaries:
                return None
            frame = frame.f_back
        return None

    def _note_task(self, coro: Any) -> None:
        first = getattr(coro, "cr_frame", None)
        if first is None or self._module(first) in self._boundaries:
            return
        maker = self._nearest(sys._getframe(2))
        if maker is not None:
            self._frames.append(first)
            self._spawned[id(first)] = self._entry_of.get(id(maker))

    @staticmethod
    def _module(frame: FrameType) -> str:
        return str(frame.f_globals.get("__name__", ""))

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or id(frame) in self._entry_of:
            return  # a coroutine resuming is not a new entry
        module = self._module(frame)
        if not module.startswith("fluxgate"):
            return
        caller = self._nearest(frame.f_back)
        parent = self._entry_of.get(id(caller)) if caller is not None else None
        caller_module = self._module(caller) if caller is not None else None
        if caller is None:  # the first frame of a task (or below one): its maker's
            at: FrameType | None = frame
            while at is not None and id(at) not in self._spawned:
                at = None if self._module(at) in self._boundaries else at.f_back
            parent = self._spawned.get(id(at)) if at is not None else None
            caller_module = self.entries[parent].module if parent is not None else None
        self._frames.append(frame)
        if caller_module == module:
            self._entry_of[id(frame)] = parent
            return
        if parent is not None:
            self.entries[parent].calls_on = True
        self._entry_of[id(frame)] = len(self.entries)
        self.entries.append(Entry(module, caller_module, parent))

    def _started(self, _code: Any, _offset: int) -> None:
        self(sys._getframe(1), "call", None)

    def __enter__(self) -> Walk:
        # The loop's create_task, wrapped on the instance for the walk's length (a task
        # factory would do, but Pyodide 314's WebLoop fails with one set).
        self._loop = asyncio.get_running_loop()
        create_task = self._loop.create_task

        def noted(coro: Any, **kwargs: Any) -> Any:
            self._note_task(coro)
            return create_task(coro, **kwargs)

        self._loop.create_task = noted  # type: ignore[method-assign]
        # sys.monitoring (3.12+) is the interpreter's, where a profile function is the
        # thread state's: Pyodide runs a coroutine resumed from JS on a thread state of
        # its own, which a profile function set here would not reach.
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is None:
            sys.setprofile(self)
            return self
        monitoring.use_tool_id(monitoring.PROFILER_ID, "module walk")
        monitoring.register_callback(
            monitoring.PROFILER_ID, monitoring.events.PY_START, self._started
        )
        monitoring.set_events(monitoring.PROFILER_ID, monitoring.events.PY_START)
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None:
            del self._loop.create_task  # the class's own again
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is None:
            sys.setprofile(None)
            return
        monitoring.set_events(monitoring.PROFILER_ID, 0)
        monitoring.free_tool_id(monitoring.PROFILER_ID)

    def chain(self, index: int) -> list[str]:
        """The modules from entry ``index`` up to the request's entry."""
        out: list[str] = []
        at: int | None = index
        while at is not None:
            out.append(self.entries[at].module)
            at = self.entries[at].parent
        return out

    def summary(self) -> Summary:
        found = Summary()
        for index, entry in enumerate(self.entries):
            if entry.calls_on:
                found.steps[entry.module] += 1
                depth = len(self.chain(index)) - 1
                found.tree.append("  " * depth + entry.module.removeprefix("fluxgate."))
            else:
                found.leaves += 1
            above = self.chain(index)[1:]
            if entry.module in above:
                found.re_entries.append([entry.module, *above[: above.index(entry.module) + 1]])
            if entry.caller is not None and len(LAYERS) > layer(entry.module) > layer(entry.caller):
                found.climbs.append((entry.caller, entry.module))
        return found
