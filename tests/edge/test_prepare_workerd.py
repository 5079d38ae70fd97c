"""Running the Worker on real workerd offline: the release a configuration selects, the bundle
built for it, and the binary copy that accepts it (``scripts/prepare_workerd.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

from prepare_workerd import BINARIES, prepare  # noqa: E402
from workerd.bundle import patched_glue  # noqa: E402
from workerd.capnp import Module, encode_bundle  # noqa: E402
from workerd.releases import Release, read_releases, selected_release  # noqa: E402

TABLE = [
    Release("pythonWorkers20250116", "0.28.2", "2025-01-16", 22, "0.28.2", "sha256-a"),
    Release("pythonWorkers20260610", "314.0.4", "2026-06-10", 22, "314.0.4", "sha256-b"),
    Release("pythonWorkers314", "314.0.6", "2026-08-17", 11, "314.0.6", "sha256-c"),
]


def installed_binary() -> Path:
    binary = next((path for path in BINARIES if path.is_file()), None)
    if binary is None:
        pytest.skip("workerd is not installed (npm ci)")
    return binary


def test_python_workers_implies_314_from_its_date():
    assert selected_release(TABLE, "2026-11-17", ["python_workers"]).pyodide == "314.0.6"
    assert selected_release(TABLE, "2026-09-08", ["python_workers"]).flag_name == "pythonWorkers314"


def test_a_named_release_flag_selects_it_and_the_newest_enabled_wins():
    named = selected_release(TABLE, "2026-09-07", ["python_workers", "python_workers_20260610"])
    assert named.pyodide == "314.0.4"
    both = selected_release(TABLE, "2026-11-17", ["python_workers", "python_workers_20260610"])
    assert both.pyodide == "314.0.6"


def test_a_selection_it_cannot_tell_is_refused_not_guessed():
    with pytest.raises(SystemExit, match="cannot tell the Python release"):
        selected_release(TABLE, "2026-01-01", ["python_workers"])
    with pytest.raises(SystemExit, match="YYYY-MM-DD"):
        selected_release(TABLE, "soon", ["python_workers"])


def test_the_bundle_file_is_named_as_workerd_looks_for_it():
    assert TABLE[2].bundle_file == "pyodide_314.0.6_2026-08-17_11.capnp.bin"


def test_the_releases_table_is_read_from_the_binary_wrangler_runs():
    releases = {r.flag_name: r for r in read_releases(installed_binary())}
    assert releases["pythonWorkers314"].real_pyodide_version == "314.0.6"
    assert releases["pythonWorkers314"].integrity.startswith("sha256-")
    assert releases["pythonWorkers20260610"].bundle_file.startswith("pyodide_314.0.4_")


def test_a_glue_file_of_another_pyodide_is_refused():
    with pytest.raises(SystemExit, match="not a Pyodide 314 glue file"):
        patched_glue("export default createPyodide;")


def test_a_bundle_is_one_segment_with_each_module_named():
    message = encode_bundle([Module("a:b", "src", b"x = 1"), Module("a:c", "wasm", b"\0asm")])
    segments, words = int.from_bytes(message[:4], "little"), int.from_bytes(message[4:8], "little")
    assert segments == 0 and len(message) == 8 + 8 * words  # one segment, whole words
    assert b"a:b\0" in message and b"a:c\0" in message and b"x = 1" in message


def test_prepare_builds_the_bundle_of_the_projects_release_and_a_binary_that_accepts_it():
    installed_binary()
    prepared = prepare(ROOT / "wrangler.toml")
    assert prepared.release == "pythonWorkers314" and prepared.pyodide == "314.0.6"
    assert Path(prepared.bundle).name == "pyodide_314.0.6_2026-08-17_11.capnp.bin"
    binary = Path(prepared.binary).read_bytes()
    # Not Cloudflare's bytes (docs/operations.md): the copy expects the built bundle's checksum.
    assert prepared.reproduced is False
    assert prepared.built_integrity.encode() in binary
    assert prepared.release_integrity.encode() not in binary
    assert ROOT / "node_modules" not in Path(prepared.binary).parents
