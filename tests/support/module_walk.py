"""The module walk of one request: which of Fluxgate's modules it enters, from where.

A design measure, not a timing. While a :class:`Walk` is active, every call that crosses
from one ``fluxgate`` module into another is an *entry* of the callee's module (a coroutine
resuming after an ``await`` is not a new entry; calls within a module are not entries). An
entry that goes on into other modules is a *step* of the walk; one that does not (a base64
helper, a dataclass) is a *leaf*.

The layering goal, "each module entered once on the way down", is checked on the chains of
the walk: the steps from the request's entry down to each leaf. A *re-entry* is a module
entered again on its own chain (it called something that called back into it: a callback
up the layers); a *climb* is a call into a higher layer than the caller's (calls into a
runtime's adapter of a port are not climbs: they implement the core's ports). A *return*
is a step into a module already stepped through by an earlier sibling (an orchestrator
calling the same module at two of its steps): reported, not a fault.

Plain Python with no imports from the project or the test suite, so that the Pyodide
harness (``tests/pyodide/cases.py``) walks the Worker's entry with the same code that
``bench/walk.py`` uses on the local runtime. :data:`LAYERS` is also the layout test's.
"""

from __future__ import annotations

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
# A runtime's adapters implement the core's ports: calling one is not a climb.
ADAPTERS = (
    "fluxgate.local.",
    "fluxgate.edge.bindings.",
    "fluxgate.edge.ffi",
    "fluxgate.edge.front.body",  # the Worker's request body: the API layer's BodyReader port
)


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
    """Entries into ``fluxgate`` modules while active (this thread only)."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []
        self._entry_of: dict[int, int | None] = {}  # frame id -> the entry it runs in
        self._frames: list[FrameType] = []  # kept alive, so that frame ids stay unique

    @staticmethod
    def _module(frame: FrameType) -> str:
        return str(frame.f_globals.get("__name__", ""))

    def __call__(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call" or id(frame) in self._entry_of:
            return  # a coroutine resuming is not a new entry
        module = self._module(frame)
        if not module.startswith("fluxgate"):
            return
        caller = frame.f_back
        while caller is not None and not self._module(caller).startswith("fluxgate"):
            caller = caller.f_back
        parent = self._entry_of.get(id(caller)) if caller is not None else None
        self._frames.append(frame)
        caller_module = self._module(caller) if caller is not None else None
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
            if (
                entry.caller is not None
                and not entry.module.startswith(ADAPTERS)
                and layer(entry.module) > layer(entry.caller)
            ):
                found.climbs.append((entry.caller, entry.module))
        return found
