"""Architecture rules that keep both runtimes honest, checked on the source itself.

Modules are named by their full dotted path (``fluxgate.edge.front.file_route``), never by
file stem, and no module is exempt from a rule.
"""

import ast
import tomllib
from functools import cache
from pathlib import Path

import pytest

from ..support.module_walk import LAYERS, RUNTIMES

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "fluxgate"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def resolve(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names."""
    if node.level == 0:
        return node.module or ""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def imported(name: str, module_level_only: bool = False) -> frozenset[str]:
    """Every module ``name`` imports, by full path (``from pkg import mod`` names ``pkg.mod``)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(path, node)
            found.add(base)
            found.update(
                f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in MODULES
            )
    return frozenset(found)


def internal(name: str, module_level_only: bool = False) -> set[str]:
    return {m for m in imported(name, module_level_only) if m in MODULES and m != "fluxgate"}


def external(name: str) -> set[str]:
    return {m.split(".")[0] for m in imported(name)} - {"fluxgate"}


# The layers and the runtimes' lanes are the module walk's too (bench/walk.py).


def owner(name: str, groups: object) -> str | None:
    """The longest prefix in ``groups`` that ``name`` is, or is inside of."""
    matches = [g for g in groups if name == g or name.startswith(g + ".")]
    return max(matches, key=len, default=None)


def rank(name: str) -> int:
    for index, layer in enumerate(LAYERS):
        if owner(name, layer) is not None:
            return index
    raise AssertionError(f"{name} is in no layer: add it to LAYERS or RUNTIMES")


def test_every_module_has_a_place():
    for name in MODULES:
        if (
            name != "fluxgate"
            and owner(name, RUNTIMES) is None
            and owner(name, ["fluxgate.edge"]) != name
        ):
            rank(name)


CORE = [
    n for n in MODULES if n != "fluxgate" and owner(n, RUNTIMES) is None and n != "fluxgate.edge"
]


@pytest.mark.parametrize("name", CORE)
def test_the_layers_import_only_downwards(name):
    mine = rank(name)
    upward = {m for m in internal(name) if owner(m, RUNTIMES) or rank(m) > mine}
    assert upward == set(), f"{name} (layer {mine}) imports from above: {sorted(upward)}"


@pytest.mark.parametrize("name", CORE)
def test_the_core_never_imports_js_or_the_web_framework(name):
    banned = {"js", "pyodide", "workers"}
    if rank(name) < rank("fluxgate.api"):
        banned |= {"fastapi", "starlette"}
    assert not external(name) & banned


@pytest.mark.parametrize("name", sorted(n for n in MODULES if owner(n, RUNTIMES)))
def test_the_runtimes_stay_in_their_lanes(name):
    ceiling = rank(RUNTIMES[owner(name, RUNTIMES)])
    other = "fluxgate.local" if name.startswith("fluxgate.edge") else "fluxgate.edge"
    for imported_name in internal(name):
        if owner(imported_name, RUNTIMES) is None:
            assert rank(imported_name) <= ceiling, f"{name} imports {imported_name}"
        else:
            assert owner(imported_name, [other]) is None, f"{name} imports {imported_name}"
    if name.startswith("fluxgate.local"):
        assert not external(name) & {"js", "pyodide", "workers"}


@cache
def loads(name: str) -> frozenset[str]:
    """What importing ``name`` loads of the package: its module-level imports, transitively,
    with each package's ``__init__`` on the way."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        parts = current.split(".")
        todo.extend(
            ".".join(parts[:i]) for i in range(2, len(parts)) if ".".join(parts[:i]) in MODULES
        )
        todo.extend(internal(current, module_level_only=True))
    return frozenset(seen)


# The Worker's entry (src/entry.py) imports the app at top level, so pydantic and FastAPI
# are in the memory snapshot taken at deploy time, not loaded by any request: the signed
# download runs over the per-isolate gateway (settings included) at no cost for it, and
# the Worker's entry class is not among these. The adapters of the bindings (the Durable
# Objects among them) and the reading of ``env`` stay free of the web framework: they are
# plain adapters, which the Pyodide harness drives without the app.
PYDANTIC_FREE_ROOTS = [
    "fluxgate.edge.front.config",
    *sorted(n for n in MODULES if n.startswith("fluxgate.edge.bindings")),
]


@pytest.mark.parametrize("root", PYDANTIC_FREE_ROOTS)
def test_the_workers_download_path_and_adapters_load_no_pydantic(root):
    heavy = {m: external(m) & {"pydantic", "fastapi", "starlette"} for m in loads(root)}
    assert {m: libs for m, libs in heavy.items() if libs} == {}


def private_imports(path: Path) -> list[str]:
    """``from X import _name`` of a module's private name, anywhere in the module."""
    tree = ast.parse(path.read_text())
    return [
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name.startswith("_") and not alias.name.startswith("__")
    ]


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_another_modules_private_name(name):
    assert private_imports(MODULES[name]) == []


def test_no_two_modules_share_a_name():
    """``images``, ``api/images`` and ``edge/images`` were three things: a name says which."""
    stems: dict[str, list[str]] = {}
    for name, path in MODULES.items():
        if path.name != "__init__.py":
            stems.setdefault(path.stem, []).append(name)
    shared = {stem: names for stem, names in stems.items() if len(names) > 1}
    assert shared == {}


def test_wrangler_toml_declares_the_bindings():
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    assert config["main"] == "src/entry.py"
    assert "python_workers" in config["compatibility_flags"]
    assert config["ai"]["binding"] == "AI"
    assert [ns["binding"] for ns in config["kv_namespaces"]] == ["KV"]
    assert [b["binding"] for b in config["r2_buckets"]] == ["IMAGES"]


def test_worker_vars_are_known_settings():
    """Every ``[vars]`` name is a setting, and the Worker reads every setting off ``env``
    with the code that reads the local environment (``Settings.from_mapping``)."""
    from fluxgate.edge.front.config import EnvVars
    from fluxgate.service.settings import Settings

    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    assert {name.lower() for name in config["vars"]} <= set(Settings.model_fields)
    asked: list[str] = []

    class Env:
        def __getattr__(self, name: str) -> None:
            asked.append(name)

    assert Settings.from_mapping(EnvVars(Env())) == Settings()
    assert sorted(asked) == sorted(name.upper() for name in Settings.model_fields)
    wiring = (PACKAGE / "edge" / "front" / "gateway_env.py").read_text()
    assert "Settings.from_mapping(EnvVars(env))" in wiring
