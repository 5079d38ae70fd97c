"""Vendor the Worker's locked Python packages into ``python_modules/``, offline.

``uv run pywrangler deploy`` (workers-py) resolves ``pyproject.toml`` against Pyodide's package
index and vendors the result; that index is not reachable offline and its resolution is not
pinned by this repository. This script is the offline equivalent, from the committed lock:
it installs exactly the wheels of ``worker/requirements.lock`` (downloaded and SHA-256-checked
by ``scripts/worker_wheels.py``; the hashes are checked again here) into ``python_modules/``
at the repository root, which is where ``wrangler deploy`` picks vendored packages up for a
Python Worker.

    python3 scripts/vendor_worker.py [--wheels .cache/worker-wheels] [--dest python_modules]

What lands in ``python_modules/`` is what pywrangler's sync leaves there (workers-py 1.16,
``pywrangler/sync.py``: ``uv pip install`` into a fresh Pyodide venv's site-packages, which is
then copied to ``python_modules/`` with an empty ``pyvenv.cfg``):

* every wheel's purelib/platlib content, i.e. the packages *and* their ``*.dist-info``
  (``importlib.metadata`` works on the Worker; pydantic looks up plugins through it), type
  stubs, ``py.typed``, licences, and ``.pth`` files;
* ``<name>.data/purelib`` and ``<name>.data/platlib`` are merged into the root like an
  installer does; ``.data/scripts|headers|data`` would land outside site-packages, so they are
  left out (none of the locked wheels has any);
* no ``.pyc``: uv does not compile bytecode by default, and wrangler's default
  ``python_modules.exclude`` is ``["**/*.pyc"]`` anyway. Nothing else (tests, stubs) is pruned;
* an empty ``pyvenv.cfg`` marks the folder as a virtual environment (so editors and linters
  leave it alone), as pywrangler does. pywrangler's ``.synced`` token is *not* written: a later
  ``uv run pywrangler deploy`` then re-syncs with its own resolver instead of trusting this.

wrangler uploads every other file under ``python_modules/`` as a module named
``python_modules/<path>`` (``Data``; ``workers/*.js`` as ES modules), so the folder is rebuilt
from scratch on every run (idempotent): stale packages would otherwise ship.

``workers-runtime-sdk`` is vendored, not left to the runtime: pywrangler always adds it to
the resolution (``MANAGED_SDK_PACKAGE`` in ``pywrangler/resolve.py``), and workerd no longer
provides it at the compatibility date in ``wrangler.toml``. From 2026-04-21 the
``enable_python_external_sdk`` flag is on by date and the runtime, instead of injecting its
own ``workers`` and ``asgi`` modules, installs stubs that raise ``ModuleNotFoundError: No
module named 'workers'`` ("update to workers-py >= 1.9 or pass disable_python_external_sdk");
``src/`` imports ``WorkerEntrypoint``, ``DurableObject`` and ``asgi`` from ``workers``. From
2026-05-26 ``python_process_pth_files`` makes the runtime process ``.pth`` files in
``python_modules/``: the SDK's ``_workers_sdk_patch_loader.pth`` installs the import-time
entropy patches for third-party packages that workerd moved out of the runtime into the SDK,
so the ``.pth`` file must be vendored too (it is). ``workers/workflows.js`` ships as well.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from worker_wheels import DEFAULT_DEST, LOCK, ensure, read_lock  # noqa: E402

VENDOR_DIR = ROOT / "python_modules"


def safe_target(root: Path, member: str) -> Path | None:
    path = PurePosixPath(member)
    if path.is_absolute() or ".." in path.parts:
        raise SystemExit(f"refusing to unpack {member!r}: path escapes the vendor folder")
    return root.joinpath(*path.parts) if path.parts else None


def install_wheel(wheel: Path, target: Path) -> int:
    """Unpack one wheel into ``target`` like an installer's site-packages; return file count."""
    count = 0
    with zipfile.ZipFile(wheel) as archive:
        heads = {member.split("/", 1)[0] for member in archive.namelist()}
        data_dir = next((head for head in heads if head.endswith(".data")), None)
        dist_info = [head for head in heads if head.endswith(".dist-info")]
        if len(dist_info) != 1:
            raise SystemExit(f"{wheel.name}: expected one .dist-info folder, found {dist_info}")
        for info in archive.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if name.endswith(".pyc") or "/__pycache__/" in f"/{name}":
                continue
            if data_dir is not None and name.startswith(f"{data_dir}/"):
                scheme, _, rest = name[len(data_dir) + 1 :].partition("/")
                if scheme not in ("purelib", "platlib") or not rest:
                    continue  # scripts/headers/data: outside site-packages, not vendored
                name = rest
            dest = safe_target(target, name)
            if dest is None:
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
            count += 1
    (target / dist_info[0] / "INSTALLER").write_text("fluxgate-vendor\n")  # as installers do
    return count + 1


def vendor(wheels: Path = DEFAULT_DEST, dest: Path = VENDOR_DIR, lock: Path = LOCK) -> dict:
    entries = read_lock(lock)
    found = ensure(wheels, lock)

    dest = dest.resolve()
    if dest.exists():
        # Only ever replace a folder this script made (it leaves a pyvenv.cfg), or an empty one.
        if any(dest.iterdir()) and not (dest / "pyvenv.cfg").exists():
            raise SystemExit(f"{dest} is not a vendored python_modules: not replacing it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    try:
        files = 0
        for entry in entries:
            files += install_wheel(found[entry], dest)
        (dest / "pyvenv.cfg").touch()
        files += 1
    except BaseException:
        # No half-vendored folder: wrangler would silently deploy whatever is there.
        shutil.rmtree(dest, ignore_errors=True)
        raise
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    return {"packages": len(entries), "files": files, "bytes": size, "dest": dest}


STAMP = ROOT / ".cache" / "vendored-lock.sha256"


def vendored_from(lock: Path, dest: Path) -> str:
    """What a vendored folder was made from: the lock's digest and the folder."""
    return f"{hashlib.sha256(lock.read_bytes()).hexdigest()} {dest.resolve()}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, default=DEFAULT_DEST, help="wheel cache folder")
    parser.add_argument("--dest", type=Path, default=VENDOR_DIR, help="vendor folder (rebuilt)")
    parser.add_argument(
        "--if-changed",
        action="store_true",
        help="keep the folder when it was vendored from this very lock (`npm run worker`, the"
        " tests: a Worker starting elsewhere may be reading it)",
    )
    args = parser.parse_args()
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    # One vendoring at a time on this machine: parallel test processes and servers share it.
    with (STAMP.parent / "vendor.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        made_from = vendored_from(LOCK, args.dest)
        current = STAMP.read_text() if STAMP.is_file() else ""
        if args.if_changed and current == made_from and (args.dest / "pyvenv.cfg").is_file():
            print(f"python_modules is vendored from {LOCK.relative_to(ROOT)} already")
            return 0
        STAMP.unlink(missing_ok=True)
        result = vendor(args.wheels, args.dest)
        STAMP.write_text(made_from)
    try:
        shown = result["dest"].relative_to(ROOT)
    except ValueError:
        shown = result["dest"]
    print(
        f"vendored {result['packages']} locked packages into {shown}: "
        f"{result['files']} files, {result['bytes'] / 2**20:.2f} MiB uncompressed"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
