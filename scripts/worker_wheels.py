"""Download the Worker's locked wheels (``worker/requirements.lock``) into a folder.

pip checks every wheel against the lock's SHA-256 (``--require-hashes``), and resolves for
the Python 3.14 Workers runtime's platform, so what lands is exactly what the Worker on workerd
loads and what a deploy vendors. Wheels already present are reused (pip verifies them).

    python3 scripts/worker_wheels.py [--dest .cache/worker-wheels]
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "worker" / "requirements.lock"
DEFAULT_DEST = ROOT / ".cache" / "worker-wheels"

# Pyodide 314.0.6 (workerd's python_workers_314, the release wrangler.toml selects) is
# CPython 3.14 on this ABI.
PIP_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--platform",
    "pyemscripten_2026_0_wasm32",
    "--platform",
    "any",
    "--python-version",
    "3.14",
    "--implementation",
    "cp",
]


LOCK_LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9._-]+)==(?P<version>\S+)\s+--hash=sha256:(?P<sha>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Locked:
    name: str
    version: str
    sha256: str


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(lock: Path = LOCK) -> list[Locked]:
    entries = []
    for number, raw in enumerate(lock.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = LOCK_LINE.match(line)
        if match is None:
            raise SystemExit(f"{lock}:{number}: not `name==version --hash=sha256:...`: {raw!r}")
        entries.append(Locked(canonical(match["name"]), match["version"], match["sha"]))
    if not entries:
        raise SystemExit(f"{lock}: no packages")
    return entries


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_wheels(entries: list[Locked], wheels: Path) -> dict[Locked, Path] | None:
    """Each locked package's wheel in ``wheels`` (by name, version and hash), or None."""
    found: dict[Locked, Path] = {}
    candidates = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
    for entry in entries:
        matches = [
            wheel
            for wheel in candidates
            if canonical(wheel.name.split("-")[0]) == entry.name
            and wheel.name.split("-")[1] == entry.version
            and sha256(wheel) == entry.sha256
        ]
        if len(matches) != 1:
            return None
        found[entry] = matches[0]
    return found


def pip_download(dest: Path, requirements: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``pip download`` of ``requirements`` into ``dest`` for the Workers runtime's platform."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"),
            *options,
            *PIP_PLATFORM_ARGS,
            *("--dest", str(dest), "-r", str(requirements)),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def ensure(dest: Path = DEFAULT_DEST, lock: Path = LOCK) -> dict[Locked, Path]:
    """Each locked wheel in ``dest``, checked against the lock; pip fetches what is missing
    (hashes enforced). Raises ``SystemExit`` with a clear message when that fails."""
    entries = read_lock(lock)
    found = find_wheels(entries, dest)
    if found is not None:
        return found
    dest.mkdir(parents=True, exist_ok=True)
    pip = pip_download(dest, lock, "--no-deps", "--require-hashes")
    found = find_wheels(entries, dest)
    if pip.returncode != 0 or found is None:
        raise SystemExit(
            f"pip could not download the locked wheels into {dest} (exit {pip.returncode});"
            f" with no package index reachable, fill that folder from a machine that has one\n"
            f"{pip.stderr[-2000:]}"
        )
    return found


def download(dest: Path = DEFAULT_DEST) -> Path:
    """The folder holding every locked wheel (downloaded if needed)."""
    ensure(dest)
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    print(download(parser.parse_args().dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
