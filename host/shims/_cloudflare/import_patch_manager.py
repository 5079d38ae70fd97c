"""Patches applied around a module's import, as workerd's import patch manager applies them.

``register_exec_patch(name)`` registers a context manager that receives the module and wraps
its execution: code before ``yield`` runs before the module body, code after it runs once
the module is initialised. ``register_create_patch`` wraps module creation (the host runs
it around execution too). Snapshot hooks have no meaning without a snapshot: they are
accepted and ignored.
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


def register_before_first_request(*_names: str) -> Callable[[Any], Any]:
    return lambda function: function


register_after_snapshot = register_before_first_request


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


sys.meta_path.insert(0, _PatchFinder())
