"""The wheel: what `pip install` gives a user of `fluxgate serve`, the console included."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_an_installed_wheel_serves_the_console_from_its_own_files(tmp_path):
    built = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(built)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (wheel,) = built.glob("fluxgate-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    for file in (ROOT / "console").iterdir():
        assert (site / "fluxgate" / "console_site" / file.name).read_bytes() == file.read_bytes()
    # Imported from the unpacked wheel, with no checkout around it: the files it carries.
    probe = (
        "from fluxgate.api import console; site = console.load(); "
        "print(console.DIRECTORY.relative_to(console.DIRECTORY.parents[1]), sorted(site.assets))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.startswith("fluxgate/console_site ")
    assert "'/'" in out and "'/console.js'" in out
