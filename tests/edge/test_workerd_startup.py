"""Production's start-up path, on real workerd: the Worker restored from a memory snapshot.

On Cloudflare a deploy runs the Worker's top level once (``src/entry.py``: FastAPI, pydantic
and every Fluxgate module imported) and saves a *dedicated* memory snapshot of the
interpreter after it; every cold start restores that snapshot instead of running the top
level again. workerd does the same on the command line (workerd ``src/workerd/server/
workerd.c++``): ``--python-save-snapshot`` writes the snapshot into
``--python-snapshot-dir`` as ``snapshot.bin`` (``src/pyodide/internal/snapshot.ts``,
``collectSnapshot``) while the Worker starts, at the end of its top level
(``python-entrypoint-helper.ts``, ``initPython`` then ``maybeCollectDedicatedSnapshot``),
and then goes on serving; ``--python-load-snapshot snapshot.bin`` restores it. Which kind is
taken follows the compatibility flags: ``python_dedicated_snapshot`` (implied, through
``python_workers_20250116``, by ``python_workers`` with a date from 2025-10-16: workerd's
``compatibility-date.capnp``) makes it the dedicated one a deploy takes, and a restore then
refuses any other kind (``checkSnapshotType``). The launcher of
``scripts/prepare_workerd.py`` passes ``$FLUXGATE_WORKERD_ARGS`` to ``workerd serve``, which
``Workerd(workerd_args=...)`` sets. (wrangler's harness runs two workerd processes, its
proxy Worker's and the runtime's; both get the flags, and only the runtime's has a Python
Worker to snapshot.)

What this module pins down, from the cheapest check to the dearest:

- *No randomness at import* (CPython, about a second each): workerd refuses randomness while
  a Worker starts (``Randomness is not allowed while a Worker is starting``), and a value
  drawn then would be baked into the snapshot and shared by every isolate. Importing what
  the Worker imports, with every source of randomness refusing, must succeed; the same
  check on a copy of ``src/`` with a module-level ``secrets.token_hex(16)`` (the bug the
  ``b64_json`` placeholder mark, ``fluxgate.api.reply.b64_mark``, once had) must fail.
- *No module of ``src/`` is shadowed*: on workerd the standard library, ``python_modules/``
  and Pyodide's own packages come before the module root (``src/``) on ``sys.path``, the
  other way round from CPython, so no top-level name of ``src/`` may also be one of theirs.
- EXPENSIVE, each starts workerd (about 10 s a fresh start, 4 s a restored one; shared
  within the module and, for the snapshot and the probe, across the xdist workers of a
  session; under ``--dist loadgroup`` the whole module runs in one worker):
  a throwaway Python Worker (the *probe*) shows ``sys.path`` as workerd builds it, and
  that ``--python-load-snapshot`` really restores (the top level does not run again and
  the runtime says it loaded a snapshot); the Worker's own deploy snapshot is taken as a
  deploy takes it, given every secret a deploy has, and holds none of them (raw, DER, base64);
  two isolates restored from it answer their very first requests (a
  ``b64_json`` generation first), a miss, a hit, a signed download, an async job and the
  README session, and draw their own random values after they start.
"""

from __future__ import annotations

import ast
import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from fluxgate.delivery.signing import parse_signing_keys

from ..project.test_readme import run_session
from ..support.bodies import generate, generation
from ..support.config import SECRETS
from ..support.polling import finished
from ..support.servers import Server, worker_server
from ..support.workerd import (
    ROOT,
    SNAPSHOT,
    load_snapshot,
    node,
    prepare_workerd,
    save_snapshot,
    stack_environment,
    workerd_prerequisites,
)

SRC = ROOT / "src"
PYTHON_MODULES = ROOT / "python_modules"

# What workerd hands Python for randomness while a Worker starts, where it allows any at all
# (topLevelEntropy/lib.ts fills the buffer with 43s): a value made of it was drawn too early.
POISON = bytes([43]).hex()


def request_id_prefix(response: httpx.Response) -> str:
    """The random part of a generated ``X-Request-Id`` (``req_`` + 16 hex + an 8-hex count):
    drawn once per isolate, on its first request."""
    request_id = response.headers["x-request-id"]
    assert request_id.startswith("req_") and len(request_id) == 28, request_id
    return request_id[4:20]


def needs_workerd() -> None:
    reason = workerd_prerequisites()
    if reason is not None:
        if os.environ.get("CI"):
            pytest.fail(f"the Worker cannot run on workerd in CI: {reason}")
        pytest.skip(f"the Worker cannot run on workerd here: {reason}")


def once_per_session(
    factory: pytest.TempPathFactory, name: str, make: Callable[[Path], dict[str, Any]]
) -> tuple[Path, dict[str, Any]]:
    """``make(folder)``'s result, made by one process of the session (the xdist workers share
    the session's temporary root) and read by the others: a workerd start is dear."""
    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = shared / name
    done = shared / f"{name}.json"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            done.write_text(json.dumps(make(folder)))
    return folder, json.loads(done.read_text())


def src_top_level_names(src: Path = SRC) -> set[str]:
    """The names ``src/`` makes importable: its modules and packages."""
    return {
        path.stem if path.suffix == ".py" else path.name
        for path in src.iterdir()
        if (path.suffix == ".py" or path.is_dir()) and path.name != "__pycache__"
    }


def vendored_top_level_names(folder: Path = PYTHON_MODULES) -> set[str]:
    """The names ``python_modules/`` makes importable (metadata and .pth files aside)."""
    names = set()
    for path in folder.iterdir():
        if path.is_dir() and not path.name.endswith((".dist-info", "__pycache__")):
            names.add(path.name)
        elif path.suffix in (".py", ".so"):
            names.add(path.name.split(".")[0])
    return names


# -- No randomness at import (CPython) -------------------------------------------------------


def import_the_worker(src: Path) -> dict[str, Any]:
    """:func:`~.support.import_guard.report_import_time_randomness` in a fresh interpreter
    (``tests/support/import_guard.py`` as a script: it imports nothing of ``src/`` first)."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.import_guard", str(src)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["imported_from"] == str(src.resolve() / "fluxgate" / "__init__.py")
    return report


def test_importing_the_worker_draws_no_randomness() -> None:
    report = import_the_worker(SRC)
    assert report["refused"] == [], "\n".join(r["stack"] for r in report["refused"])
    assert report["failures"] == {}, "\n".join(report["failures"].values())
    # What the deploy-time snapshot holds: the entry point and the app behind it.
    assert {"entry", "fluxgate.edge.front.serve", "fluxgate.api.generate"} <= set(
        report["at_start"]
    )


def test_the_import_check_catches_a_random_value_made_at_import(tmp_path: Path) -> None:
    """The check is worth having only if it fails on the bug it is for: a random value made
    at a module's top level, as the ``b64_json`` placeholder mark once was."""
    copy = tmp_path / "src"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    reply = copy / "fluxgate" / "api" / "reply.py"
    reply.write_text(
        reply.read_text() + "\nimport secrets as _secrets\n\n_B64_MARK = _secrets.token_hex(16)\n"
    )
    report = import_the_worker(copy)
    assert [(r["call"], r["module"]) for r in report["refused"]][:1] == [
        ("secrets.token_hex", str(reply.resolve()))
    ]
    assert "entry" in report["failures"]


# -- No module of src/ is shadowed -----------------------------------------------------------


def test_no_top_level_name_of_src_is_a_standard_library_or_vendored_module() -> None:
    """workerd puts the standard library and python_modules/ before src/ on ``sys.path``
    (observed on workerd below), CPython after: a shared name would import a different
    module on each. The standard library's names are CPython's here; the probe below checks
    the runtime's own (Python 3.14, and Pyodide's packages) on workerd."""
    ours = src_top_level_names()
    assert "entry" in ours and "fluxgate" in ours
    assert ours & set(sys.stdlib_module_names) == set()
    assert ours & set(sys.builtin_module_names) == set()
    assert ours & vendored_top_level_names() == set()


# -- EXPENSIVE: a throwaway Python Worker on workerd (two starts, one per session) -------------

PROBE_CONFIG = """\
name = "fluxgate-startup-probe"
main = "src/entry.py"
compatibility_date = "{date}"
compatibility_flags = {flags}
"""

# The probe's top level says that it ran; its one handler answers with sys.path as workerd
# built it, the names importable from before the module root, and whether the runtime
# restored a snapshot (_cf_internal_snapshot_info: registered unless one is being taken).
PROBE_WORKER = """\
import json
import pkgutil
import sys

from workers import Response, WorkerEntrypoint

print("probe: the top level ran")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        root = __file__.rpartition("/")[0]
        try:
            import _cf_internal_snapshot_info as info
        except ImportError:
            restored = None
        else:
            restored = bool(info.loadedSnapshot)
        before = sys.path[: sys.path.index(root)]
        names = {m.name for m in pkgutil.iter_modules(before)} | set(sys.builtin_module_names)
        body = {"path": sys.path, "root": root, "restored": restored, "names": sorted(names)}
        return Response(json.dumps(body), headers={"content-type": "application/json"})
"""

# Serves the probe through wrangler's test harness on the prepared workerd, asks it once,
# and prints the answer with the probe's console.
PROBE_HARNESS = """\
import { createTestHarness } from "wrangler";
const root = process.argv[1];
const server = createTestHarness({ root, workers: [{ configPath: `${root}/wrangler.toml` }] });
await server.listen();
const body = await (await server.fetch("/")).json();
const logs = server.getLogs().map((entry) => String(entry.message));
console.log("PROBE " + JSON.stringify({ body, logs }));
await server.close();
"""


def serve_probe(folder: Path, workerd_args: tuple[str, ...]) -> dict[str, Any]:
    """The probe's answer and console, served once from ``folder`` (the project's
    compatibility date and flags, and its python_modules/) on the prepared workerd."""
    config = tomllib.loads((ROOT / "wrangler.toml").read_text())
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "entry.py").write_text(PROBE_WORKER)
    (folder / "wrangler.toml").write_text(
        PROBE_CONFIG.format(
            date=config["compatibility_date"], flags=json.dumps(config["compatibility_flags"])
        )
    )
    if not (folder / "python_modules").exists():
        (folder / "python_modules").symlink_to(PYTHON_MODULES)
    env = stack_environment(prepare_workerd())
    env["FLUXGATE_WORKERD_ARGS"] = " ".join(workerd_args)
    done = subprocess.run(
        [node() or "node", "--input-type=module", "-e", PROBE_HARNESS, str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("PROBE ")]
    assert done.returncode == 0 and lines, f"{done.stdout}\n{done.stderr}"
    answer: dict[str, Any] = json.loads(lines[-1].removeprefix("PROBE "))
    return answer


def _probe_both_ways(folder: Path) -> dict[str, Any]:
    """The probe started fresh (taking a snapshot), then restored from that snapshot."""
    snapshots = folder / "snapshots"
    snapshots.mkdir()
    fresh = serve_probe(folder, save_snapshot(snapshots))
    assert (snapshots / SNAPSHOT).is_file()
    return {"fresh": fresh, "restored": serve_probe(folder, load_snapshot(snapshots))}


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    needs_workerd()
    return once_per_session(tmp_path_factory, "workerd-startup-probe", _probe_both_ways)[1]


def test_on_workerd_the_standard_library_and_python_modules_come_before_src(
    probe: dict[str, Any],
) -> None:
    fresh = probe["fresh"]["body"]
    path, root = fresh["path"], fresh["root"]
    assert root == "/session/metadata"  # where src/ is mounted (entry.py, fluxgate/)
    stdlib = next(entry for entry in path if entry.startswith("/lib/python") and ".zip" in entry)
    assert path.index(stdlib) < path.index(root)
    assert path.index(f"{root}/python_modules") < path.index(root)
    # So nothing importable from before src/ (the runtime's standard library, Pyodide's own
    # packages, python_modules/) may have a name of src/.
    assert src_top_level_names() & set(fresh["names"]) == set()
    assert {"json", "fastapi", "workers"} <= set(fresh["names"])  # the listing is complete


def test_the_load_flag_restores_a_snapshot_without_running_the_top_level_again(
    probe: dict[str, Any],
) -> None:
    fresh, restored = probe["fresh"], probe["restored"]
    assert "probe: the top level ran" in fresh["logs"]
    assert restored["body"]["restored"] is True
    assert "probe: the top level ran" not in restored["logs"]
    assert restored["body"]["path"] == fresh["body"]["path"]


# -- EXPENSIVE: the Worker's deploy snapshot, and isolates restored from it ------------------


# The secrets of a deploy that are PEM (the C2PA signing identity): ``worker_server`` sets
# ADMIN_TOKEN and URL_SIGNING_KEYS itself, and passes these on from the environment.
C2PA_SECRETS = ("C2PA_SIGNING_KEY", "C2PA_CERTIFICATE_CHAIN")
# A base64 line of a PEM is looked for by its slices of this many characters: too long to
# occur by chance, short enough to be found in a copy cut at any other place.
WINDOW = 40
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=]{%d,}" % WINDOW)
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.*?)-----END \1-----", re.DOTALL)


@dataclass(frozen=True)
class Needles:
    """How a value would show in a snapshot's bytes: ``exact``, byte strings that would be
    there whole, and ``windows``, ``WINDOW``-character slices of its base64 lines; each
    with a description that holds nothing of the value (what is found is reported)."""

    exact: dict[bytes, str]
    windows: dict[bytes, str]


def needles_of(name: str, value: str) -> Needles:
    """The value as UTF-8; for URL_SIGNING_KEYS each key's secret too; for a PEM each
    block's DER and every slice of its base64 lines (a line shorter than a slice has its
    block's DER and the raw value to give it away)."""
    exact = {value.encode(): f"{name}: the raw value"}
    windows: dict[bytes, str] = {}
    if name == "URL_SIGNING_KEYS":
        for key in parse_signing_keys(value):
            exact[key.secret] = f"{name}: the secret of key {key.kid}"
    for number, block in enumerate(PEM_BLOCK.finditer(value), 1):
        lines = block[2].split()
        exact[base64.b64decode("".join(lines))] = f"{name}: the DER of PEM block {number}"
        for row, line in enumerate(lines, 1):
            for start in range(len(line) - WINDOW + 1):
                slice_ = line[start : start + WINDOW].encode()
                windows[slice_] = f"{name}: a slice of line {row} of PEM block {number}"
    return Needles(exact, windows)


def found_in(data: bytes, needles: Needles) -> list[str]:
    """The descriptions of the needles that occur in ``data``. A slice of a base64 line
    occurs only inside a run of base64 characters at least as long: those runs are few in
    a heap, so each of their slices is looked up instead of each needle searched for."""
    found = {what for needle, what in needles.exact.items() if needle in data}
    for run in BASE64_RUN.finditer(data):
        text = run[0]
        for start in range(len(text) - WINDOW + 1):
            what = needles.windows.get(text[start : start + WINDOW])
            if what is not None:
                found.add(what)
    return sorted(found)


def _take_deploy_snapshot(folder: Path) -> dict[str, Any]:
    """Start the Worker with the snapshot-saving flags, as a deploy's validation does: the
    snapshot is written while the Worker starts, before any request.

    The saver is given every secret a deploy has (the C2PA identity through the
    environment, which ``worker_server`` passes on), and the snapshot is searched for them
    here, by the process that knows their values (each test process issues a C2PA chain of
    its own): only their names, and what of them was found, are kept."""
    stack_folder = folder / "stack"
    stack_folder.mkdir()
    with pytest.MonkeyPatch.context() as environment:
        for name in C2PA_SECRETS:
            environment.setenv(name, SECRETS[name] or "")
        with worker_server(stack_folder, workerd_args=save_snapshot(folder)) as saver:
            assert (folder / SNAPSHOT).is_file(), saver.output()
            # workerd serves on after saving; the isolate that took the snapshot draws too.
            answered = httpx.get(f"{saver.base}/healthz", timeout=60)
            assert answered.status_code == 200, answered.text
            # The Worker got the C2PA identity and signs with it: the search below is not
            # for secrets it never had.
            credentials = httpx.get(f"{saver.base}/readyz", timeout=60).json()
            assert credentials["content_credentials"] == "signed", credentials
            given = {name: saver.env[name] for name in SECRETS if saver.env.get(name)}
    snapshot = (folder / SNAPSHOT).read_bytes()
    searched = {name: needles_of(name, value) for name, value in given.items()}
    return {
        "saver_prefix": request_id_prefix(answered),
        "secrets_searched": {
            name: {"exact": len(needles.exact), "windows": len(needles.windows)}
            for name, needles in searched.items()
        },
        "secrets_found": [what for n in searched.values() for what in found_in(snapshot, n)],
    }


@pytest.fixture(scope="module")
def deploy_snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The folder holding the Worker's deploy-style snapshot, and what its saver answered."""
    needs_workerd()
    return once_per_session(tmp_path_factory, "workerd-deploy-snapshot", _take_deploy_snapshot)


def read_snapshot_header(path: Path) -> dict[str, Any]:
    """The metadata workerd writes before the heap (snapshot.ts, ``encodeSnapshot``): four
    little-endian u32s (magic, version, heap offset, metadata length), then JSON."""
    with path.open("rb") as snapshot:
        magic, _version, _offset, length = struct.unpack("<4I", snapshot.read(16))
        assert magic == 0x706E7300, "not a workerd Python snapshot"
        header: dict[str, Any] = json.loads(snapshot.read(length))
    return header


def test_the_deploy_snapshot_is_dedicated_and_taken_after_the_top_level(
    deploy_snapshot: tuple[Path, dict[str, Any]],
) -> None:
    header = read_snapshot_header(deploy_snapshot[0] / SNAPSHOT)
    assert header["settings"]["snapshotType"] == "dedicated"
    assert header["settings"]["compatFlags"]["python_dedicated_snapshot"] is True
    # pydantic-core's extension is loaded by the Worker's top level (FastAPI's models), so
    # the heap it records is the one after the top level ran.
    assert any(
        lib.startswith("/session/metadata/python_modules/pydantic_core/")
        for lib in header["loadOrder"]
    )


def test_the_deploy_snapshot_holds_none_of_the_deployments_secrets(
    deploy_snapshot: tuple[Path, dict[str, Any]],
) -> None:
    """The snapshot is code and data every isolate of every deploy of this build starts
    from; a secret is per deployment, and reaches the Worker in ``env`` at request time
    only. The snapshot's kind and moment are the test above's; its search is done where it
    is taken (:func:`_take_deploy_snapshot`), against the secrets its saver was given."""
    folder, taken = deploy_snapshot
    # The search means something on this file: the heap is stored as it is, not
    # compressed, and a string the top level holds (the entry module's docstring) is found.
    snapshot = (folder / SNAPSHOT).read_bytes()
    entry_doc = ast.get_docstring(ast.parse((SRC / "entry.py").read_text()), clean=False)
    assert entry_doc and found_in(snapshot, needles_of("entry", entry_doc)) == [
        "entry: the raw value"
    ]
    # Every secret a deploy has was given and searched for, the PEMs by DER and slices too.
    searched = taken["secrets_searched"]
    assert sorted(searched) == sorted(SECRETS)
    assert searched["URL_SIGNING_KEYS"]["exact"] >= 2
    for name in C2PA_SECRETS:
        assert searched[name]["exact"] >= 2 and searched[name]["windows"] > 0, searched
    assert taken["secrets_found"] == []


@pytest.fixture(scope="module")
def restored(
    deploy_snapshot: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Server]]:
    """Isolates restored from the deploy snapshot, by name, each started on first use (each a
    stack of its own: workerd runs one isolate per Worker), stopped with the module."""
    started: dict[str, Server] = {}
    with ExitStack() as stacks:

        def isolate(name: str) -> Server:
            if name not in started:
                folder = tmp_path_factory.mktemp(f"restored-{name}")
                server = worker_server(folder, workerd_args=load_snapshot(deploy_snapshot[0]))
                started[name] = stacks.enter_context(server)
            return started[name]

        yield isolate


def test_a_restored_isolate_answers_a_b64_json_generation_first_then_the_rest(
    restored: Callable[[str], Server], deploy_snapshot: tuple[Path, dict[str, Any]]
) -> None:
    """A cold start's first requests, in production's order of events: nothing has run in
    this isolate since the snapshot was restored."""
    cold = restored("cold")
    crane = generation("a paper crane at dawn", square=256, seed=7)
    inline = {**crane, "response_format": "b64_json"}
    with httpx.Client(base_url=cold.base, timeout=60) as client:
        # 1. The very first request: a JSON generation asking for b64_json (the fast
        #    path). No key can exist yet (KV starts empty, and keys are made through the
        #    Worker), so it is refused, by the fast path itself.
        first = generate(client, {"Authorization": "Bearer fgk_" + "0" * 43}, inline)
        assert first.status_code == 401, first.text
        assert first.json()["error"]["code"] == "invalid_api_key"
        assert first.headers["x-request-id"].endswith("00000000")  # the isolate's first id
        prefix = request_id_prefix(first)
        assert prefix != POISON * 8 and prefix != deploy_snapshot[1]["saver_prefix"]

        # 2. The first image: a miss, inline (the first use of the placeholder mark).
        auth = {"Authorization": f"Bearer {cold.new_key('startup')}"}
        miss = generate(client, auth, inline)
        assert miss.status_code == 200, miss.text
        assert miss.headers["x-cache"] == "MISS"
        assert miss.headers["content-type"].startswith("application/json")
        item = miss.json()["data"][0]
        assert set(item) == {"b64_json"}
        image = base64.b64decode(item["b64_json"])
        assert image.startswith(b"\x89PNG\r\n\x1a\n")
        assert hashlib.sha256(image).hexdigest() == miss.json()["sha256"]

        # 3. The same again: a hit, inline too, the same bytes.
        hit = generate(client, auth, inline)
        assert hit.headers["x-cache"] == "HIT"
        assert base64.b64decode(hit.json()["data"][0]["b64_json"]) == image

        # 4. As a URL: a signed download, without the key.
        url = generate(client, auth, crane).json()["data"][0]["url"]
        download = httpx.get(url, timeout=60)
        assert download.status_code == 200 and download.headers["content-type"] == "image/png"
        assert download.content == image

        # 5. An async job: queued, run by the queue consumer, its image downloadable.
        boat = generation("a paper boat", square=256)
        submitted = generate(client, auth, boat, headers={"Prefer": "respond-async"})
        assert submitted.status_code == 202, submitted.text
        job = finished(client, auth, submitted.json())
        assert job["status"] == "succeeded", job
        result = httpx.get(job["result"]["data"][0]["url"], timeout=60)
        assert result.status_code == 200 and result.content.startswith(b"\x89PNG")


def test_the_readme_session_runs_on_a_restored_worker(
    restored: Callable[[str], Server], tmp_path: Path
) -> None:
    server = restored("readme")
    run_session(server.base, server.env, tmp_path)


def test_restored_isolates_draw_their_own_random_values(
    restored: Callable[[str], Server], deploy_snapshot: tuple[Path, dict[str, Any]]
) -> None:
    """A value drawn before the snapshot would be the same in every isolate restored from it
    (and, drawn where workerd lets a library draw, made of its 43s): each isolate's request
    ids start with a prefix of its own, unlike those of the isolate that took the snapshot."""
    prefixes = [
        request_id_prefix(httpx.get(f"{restored(name).base}/healthz", timeout=60))
        for name in ("other", "readme")  # not "cold": its first request is another test's
    ]
    prefixes.append(deploy_snapshot[1]["saver_prefix"])
    assert len(set(prefixes)) == 3, prefixes
    assert POISON * 8 not in prefixes
