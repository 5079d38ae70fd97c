"""Download the Worker's locked wheels (``worker/requirements.lock``) into a folder.

pip checks every wheel against the lock's SHA-256 (``--require-hashes``), and resolves for
the Python 3.14 Workers runtime's platform, so what lands is exactly what the Worker host
loads and what a deploy vendors. Wheels already present are reused (pip verifies them).

    python3 scripts/worker_wheels.py [--dest .cache/worker-wheels]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "worker" / "requirements.lock"
DEFAULT_DEST = ROOT / ".cache" / "worker-wheels"

# Pyodide 314.0.4 (workerd's python_workers_20260610) is CPython 3.14 on this ABI.
PIP_PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--platform", "pyemscripten_2026_0_wasm32",
    "--platform", "any",
    "--python-version", "3.14",
    "--implementation", "cp",
]


def download(dest: Path = DEFAULT_DEST) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
            "--no-deps", "--require-hashes", *PIP_PLATFORM_ARGS,
            "--dest", str(dest), "-r", str(LOCK),
        ],
        check=True,
    )
    return dest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST)
    print(download(parser.parse_args().dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
