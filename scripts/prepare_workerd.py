"""Prepare real workerd to run the Python Worker offline; print the command Miniflare runs.

    python3 scripts/prepare_workerd.py [--config wrangler.toml] [--json]

workerd downloads the Pyodide bundle of the Worker's Python release when it starts. This
builds that bundle from npm ``pyodide`` (``package.json`` pins the exact version of the
release ``wrangler.toml`` selects) into ``.cache/workerd/bundles/``, where workerd finds it
with ``--pyodide-bundle-disk-cache-dir``. workerd checks the bundle against the SHA-256
compiled into it for the release; the bundle built here is not byte-identical to
Cloudflare's (see docs/operations.md, *The Worker on workerd*), so unless it is, a copy of
the binary expecting the built bundle's checksum is written to ``.cache/workerd/`` (the same-length
checksum string replaced; nothing else differs). Nothing is written into ``node_modules``.

It writes ``.cache/workerd/workerd``, a script that runs that binary and adds the bundle
directory to ``serve`` (plus ``$FLUXGATE_WORKERD_ARGS``: the memory-snapshot flags), and
prints its path: ``MINIFLARE_WORKERD_PATH`` for wrangler and Miniflare. Work already done is
reused; a changed binary, Pyodide or configuration rebuilds it.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import stat
import sys
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path

from workerd.bundle import build_bundle, integrity, pyodide_version
from workerd.releases import Release, read_releases, selected_release

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "workerd"
# The binary wrangler runs (its own workerd dependency), before any hoisted copy.
BINARIES = (
    ROOT / "node_modules/wrangler/node_modules/@cloudflare/workerd-linux-64/bin/workerd",
    ROOT / "node_modules/@cloudflare/workerd-linux-64/bin/workerd",
)
PYODIDE = ROOT / "node_modules" / "pyodide"


@dataclass(frozen=True)
class Prepared:
    """What was prepared: the command for ``MINIFLARE_WORKERD_PATH`` and why it is what it is."""

    command: str
    binary: str
    bundle: str
    release: str  # the flag, e.g. pythonWorkers314
    pyodide: str
    reproduced: bool  # the built bundle has the release's own checksum: binary unpatched
    built_integrity: str
    release_integrity: str


def original_binary() -> Path:
    for path in BINARIES:
        if path.is_file():
            return path
    raise SystemExit("workerd is not installed: run `npm ci` first")


def config_release(config: Path, releases: list[Release]) -> Release:
    settings = tomllib.loads(config.read_text())
    date = str(settings.get("compatibility_date", ""))
    return selected_release(releases, date, list(settings.get("compatibility_flags", [])))


def _write(path: Path, data: bytes, mode: int | None = None) -> None:
    """Atomically: a half-written binary or bundle is never left where workerd looks."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    if mode is not None:
        tmp.chmod(mode)
    os.replace(tmp, path)


def _patched_binary(original: Path, release: Release, built: str) -> Path:
    """A copy of ``original`` that expects ``built`` where it expected the release's checksum.

    The development release's entry can share the checksum string; every occurrence names the
    same bytes, so all are replaced. Reused when a previous run made the same copy: the
    copy's name stands for the original (its size, time and inode), the checksum replaced
    and the one put in its place."""
    made = original.stat()
    identity = f"{made.st_size}:{made.st_mtime_ns}:{made.st_ino}:{release.integrity}:{built}"
    target = CACHE / f"workerd-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    if target.is_file():
        return target
    blob = original.read_bytes()
    old, new = release.integrity.encode(), built.encode()
    if len(old) != len(new) or blob.count(old) < 1:
        raise SystemExit(f"{original}: the checksum {release.integrity} is not in the binary")
    mode = original.stat().st_mode | stat.S_IXUSR
    _write(target, blob.replace(old, new), mode)
    return target


def _sweep(keep: set[Path]) -> None:
    """Copies of the binary and bundles this configuration no longer uses (100 MB each)."""
    for stale in [*CACHE.glob("workerd-*"), *(CACHE / "bundles").glob("*.capnp.bin")]:
        if stale not in keep:
            stale.unlink(missing_ok=True)


def _launcher(binary: Path, bundles: Path) -> Path:
    """The script Miniflare runs as workerd: ``serve`` gets the bundle directory."""
    script = CACHE / "workerd"
    text = f"""#!/bin/sh
# Written by scripts/prepare_workerd.py: workerd with the Pyodide bundle built offline.
# FLUXGATE_WORKERD_ARGS adds serve flags (the memory-snapshot ones, an async trace); "{{pid}}"
# in them becomes the process's id (a stack runs two workerd processes: one file each).
if [ "$1" = serve ]; then
  shift
  extra=$(printf '%s' "$FLUXGATE_WORKERD_ARGS" | sed "s/{{pid}}/$$/g")
  exec "{binary}" serve --pyodide-bundle-disk-cache-dir "{bundles}" $extra "$@"
fi
exec "{binary}" "$@"
"""
    if not script.is_file() or script.read_text() != text:
        _write(script, text.encode(), 0o755)
    return script


def prepare(config: Path) -> Prepared:
    """Everything above, once at a time on this machine (parallel tests start stacks)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "prepare.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        return _prepare(config)


def _prepare(config: Path) -> Prepared:
    original = original_binary()
    release = config_release(config, read_releases(original))
    if not PYODIDE.is_dir():
        raise SystemExit("npm pyodide is not installed: run `npm ci` first")
    version = pyodide_version(PYODIDE)
    if version != release.real_pyodide_version:
        raise SystemExit(
            f"{config.name} selects {release.flag_name}, which runs Pyodide "
            f"{release.real_pyodide_version}; package.json pins pyodide {version}"
        )
    bundles = CACHE / "bundles"
    bundle = bundles / release.bundle_file
    body = build_bundle(PYODIDE)
    built = integrity(body)
    if not bundle.is_file() or integrity(bundle.read_bytes()) != built:
        _write(bundle, body)
    reproduced = built == release.integrity or not release.checked
    binary = original if reproduced else _patched_binary(original, release, built)
    _sweep({binary, bundle})
    return Prepared(
        command=str(_launcher(binary, bundles)),
        binary=str(binary),
        bundle=str(bundle),
        release=release.flag_name,
        pyodide=version,
        reproduced=reproduced,
        built_integrity=built,
        release_integrity=release.integrity,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "wrangler.toml")
    parser.add_argument("--json", action="store_true", help="print everything prepared, as JSON")
    args = parser.parse_args(argv)
    prepared = prepare(args.config)
    print(json.dumps(asdict(prepared), indent=1) if args.json else prepared.command)
    return 0


if __name__ == "__main__":
    sys.exit(main())
