"""The import check of ``tests/edge/test_workerd_startup.py``, run in a fresh interpreter.

``python -m tests.support.import_guard SRC`` imports what the Worker imports from ``SRC``
with every source of randomness refusing, and prints the report as one JSON line. It is a
module of its own, importing nothing but the standard library, so that nothing of ``src/``
is imported before the guard is in place (the test module's helpers import ``fluxgate``).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import sys
import traceback
import types
from collections.abc import Callable
from importlib.abc import Loader, MetaPathFinder
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any


class _Anything(type):
    """What a name of the Workers runtime's modules is outside it: any attribute and any call
    gives another, and it can be subclassed (``class Default(WorkerEntrypoint)``)."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(name, (), {})

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return _Anything(cls.__name__, (), {})


class _RuntimeModules(MetaPathFinder, Loader):
    """``js``, ``pyodide``, ``workers`` and ``asgi``, which only Pyodide on workerd has."""

    ROOTS = frozenset({"js", "pyodide", "workers", "asgi"})

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.ROOTS:
            return ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: _Anything(name, (), {})  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def _importing_file(frame: types.FrameType | None) -> str | None:
    """The file whose module-level code is innermost on the stack: the module being
    imported that, at its top level, asked for randomness (directly or through a call)."""
    while frame is not None:
        if frame.f_code.co_name == "<module>":
            return frame.f_code.co_filename
        frame = frame.f_back
    return None


def report_import_time_randomness(src: Path) -> dict[str, Any]:
    """Import what the Worker imports from ``src`` (``entry``, then every other module of
    ``fluxgate`` it may import later, the local runtime's aside) with every source of
    randomness refusing a module of ``src`` that asks at its top level: ``os.urandom``,
    ``os.getrandom``, ``random``'s functions, an unseeded ``random.Random``,
    ``SystemRandom`` and ``secrets``. That is workerd's rule for the Worker's own code
    (src/pyodide/internal/topLevelEntropy); a library's own import-time draws (pydantic's
    hash seed, OpenTelemetry's context keys) are the runtime's to allow or refuse, on
    workerd, and are let through. Run in a fresh interpreter: see ``__main__`` below."""
    src = src.resolve()
    assert "fluxgate" not in sys.modules, "fluxgate was imported before the guard"
    refused: list[dict[str, str | None]] = []

    def guarded(name: str, draw: Callable[..., Any]) -> Callable[..., Any]:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            module = _importing_file(sys._getframe(1))
            if module is not None and Path(module).resolve().is_relative_to(src):
                stack = "".join(traceback.format_stack()[:-1])
                refused.append({"call": name, "module": module, "stack": stack})
                raise OSError(29, f"{name}: no randomness while the Worker starts")
            return draw(*args, **kwargs)

        return refuse

    os.urandom = guarded("os.urandom", os.urandom)
    if hasattr(os, "getrandom"):
        os.getrandom = guarded("os.getrandom", os.getrandom)
    random._urandom = guarded("random.SystemRandom", random._urandom)  # type: ignore[attr-defined]
    for name in dir(random):
        value = getattr(random, name)
        if not name.startswith("_") and callable(value) and not isinstance(value, type):
            setattr(random, name, guarded(f"random.{name}", value))
    seeded = random.Random.seed
    unseeded = guarded("random.Random() without a seed", seeded)

    def seed(self: random.Random, a: Any = None, version: int = 2) -> None:
        (unseeded if a is None else seeded)(self, a, version)

    random.Random.seed = seed  # type: ignore[method-assign]
    for name in ("token_bytes", "token_hex", "token_urlsafe", "randbits", "choice", "randbelow"):
        setattr(secrets, name, guarded(f"secrets.{name}", getattr(secrets, name)))

    sys.meta_path.insert(0, _RuntimeModules())
    sys.path.insert(0, str(src))
    failures: dict[str, str] = {}
    try:
        __import__("entry")
    except Exception:
        failures["entry"] = traceback.format_exc()
    at_start = sorted(m for m in sys.modules if m == "entry" or m.startswith("fluxgate"))
    package = src / "fluxgate"
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module.startswith("fluxgate.local") or module in sys.modules:
            continue
        try:
            __import__(module)
        except Exception:
            failures[module] = traceback.format_exc()
    fluxgate = sys.modules.get("fluxgate")
    return {
        "refused": refused,
        "failures": failures,
        "at_start": at_start,
        "imported_from": getattr(fluxgate, "__file__", None),
    }


if __name__ == "__main__":
    print(json.dumps(report_import_time_randomness(Path(sys.argv[1]))))
