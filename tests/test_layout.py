"""Architecture rules that keep both runtimes honest, checked on the source itself."""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fluxgate"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def relative_imports(path: Path) -> set[str]:
    """Module-level relative imports (what importing the module loads)."""
    tree = ast.parse(path.read_text())
    return {
        node.module or ""
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.level > 0
    }


CORE = [p for p in PACKAGE.rglob("*.py") if "edge" not in p.parts]


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_and_local_runtime_never_import_js(path):
    assert not imports(path) & {"js", "pyodide", "workers"}


# What the Worker's file route and the adapters load must work without pydantic.
PYDANTIC_FREE = [
    "edge/ffi.py",
    "edge/kv.py",
    "edge/r2.py",
    "edge/ai.py",
    "models.py",
    "idempotency.py",
    "edge/files.py",
    "edge/config.py",
    "edge/worker.py",
    "edge/jobs.py",
    "job_table.py",
    "webhooks.py",
    "auth.py",
    "tokens.py",
    "edge/coalesce.py",
    "edge/ledger.py",
    "edge/catalog.py",
    "catalog.py",
    "edge/idempotency.py",
    "idempotency_store.py",
    "edge/ratelimit.py",
    "coalesce.py",
    "ledger.py",
    "usage_events.py",
    "usage_history.py",
    "edge/analytics.py",
    "ratelimit.py",
    "files.py",
    "variants.py",
    "disclosure.py",
    "edge/images.py",
    "signing.py",
    "errors.py",
    "request_context.py",
    "cors.py",
    "edge/envelope.py",
    "storage.py",
    "b64.py",
    "image_model.py",
    "image_bytes.py",
    "edge/image_buffer.py",
    "params.py",
    "pricing.py",
    "records.py",
    "images.py",
    "multipart.py",
    "upstream.py",
    "__init__.py",
]


@pytest.mark.parametrize("name", PYDANTIC_FREE)
def test_worker_adapters_and_file_route_stay_pydantic_free(name):
    path = PACKAGE / name
    assert not imports(path) & {"pydantic", "fastapi", "starlette"}
    local = {m.split(".")[-1] for m in relative_imports(path)} - {""}
    allowed = {Path(n).stem for n in PYDANTIC_FREE} | {"ffi", "config", "kv", "r2", "ai"}
    assert local <= allowed, f"{name} imports {local - allowed}"


# The core: every module at the package root. ``gateway`` is the composition root, the one
# that wires the API layer's presenter into the webhook sender.
CORE_ROOT = [p for p in PACKAGE.glob("*.py") if p.name != "gateway.py"]


@pytest.mark.parametrize("path", CORE_ROOT, ids=lambda p: p.name)
def test_the_core_never_imports_the_http_layer(path):
    local = {m.split(".")[0] for m in relative_imports(path)}
    assert "api" not in local and not imports(path) & {"fastapi", "starlette"}


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


@pytest.mark.parametrize(
    "path", list(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_module_imports_another_modules_private_name(path):
    assert private_imports(path) == []


def test_wrangler_toml_declares_the_bindings():
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    assert config["main"] == "src/entry.py"
    assert "python_workers" in config["compatibility_flags"]
    assert config["ai"]["binding"] == "AI"
    assert [ns["binding"] for ns in config["kv_namespaces"]] == ["KV"]
    assert [b["binding"] for b in config["r2_buckets"]] == ["IMAGES"]


def test_worker_vars_are_known_settings():
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    text = (PACKAGE / "edge" / "config.py").read_text()
    for name in config["vars"]:
        assert f'"{name}"' in text, f"[vars] {name} is not read by the Worker"
    from fluxgate.settings import Settings

    for name in config["vars"]:
        assert name.lower() in Settings.model_fields
