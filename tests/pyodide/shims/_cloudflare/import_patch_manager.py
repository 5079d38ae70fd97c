"""Patches applied around a module's import, as workerd's import patch manager applies them.

``register_exec_patch(name)`` registers a context manager that receives the module and wraps
its execution: code before ``yield`` runs before the module body, code after it runs once
the module is initialised. ``register_create_patch`` wraps module creation (here it runs
around execution too). As in workerd, patches apply only to imports made before the first
request: :func:`before_first_request` removes the import hook and runs the callbacks
registered for that moment, so that a module first imported afterwards is left unpatched as
it is on Cloudflare. (The Pyodide harness imports no entry module and so never calls it:
every import a case makes is patched.)
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

Patch = Callable[[Any], AbstractContextManager[Any]]
_patches: dict[str, list[Patch]] = {}


def _register(name: str) -> Callable[[Patch], Patch]:
    def decorate(patch: Patch) -> Patch:
        _patches.setdefault(name, []).append(patch)
        return patch

    return decorate


register_exec_patch = _register
register_create_patch = _register


_first_request_callbacks: list[tuple[str, Callable[[Any], Any]]] = []


def register_before_first_request(name: str) -> Callable[[Any], Any]:
    """``callback(module)`` before the first request, if ``name`` has been imported."""

    def decorate(function: Any) -> Any:
        _first_request_callbacks.append((name, function))
        return function

    return decorate


def register_after_snapshot(_name: str) -> Callable[[Any], Any]:
    """Accepted and ignored: these check state across a snapshot, which the harness never takes."""
    return lambda function: function


def block_calls(*_args: Any, **_kwargs: Any) -> None:
    return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner: Any, patches: list[Patch]) -> None:
        self._inner = inner
        self._patches = patches

    def create_module(self, spec: Any) -> Any:
        return self._inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        managers = [patch(module) for patch in self._patches]
        for manager in managers:
            manager.__enter__()
        self._inner.exec_module(module)
        for manager in reversed(managers):
            manager.__exit__(None, None, None)


class _PatchFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        patches = _patches.get(name)
        if not patches:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchingLoader(spec.loader, patches)
        return spec


_finder = _PatchFinder()
sys.meta_path.insert(0, _finder)


def before_first_request() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    for name, callback in _first_request_callbacks:
        if name in sys.modules:
            callback(sys.modules[name])
    _first_request_callbacks.clear()
