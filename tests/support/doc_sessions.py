"""The curl sessions of the docs, run as written: the block after a page's marker comment,
in bash with ``-euo pipefail``, against a running server (tests/project/test_readme.py,
tests/project/test_mobile_guide.py)."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path


def session_block(page: Path, marker: str) -> str:
    """The first ```bash block after ``<!-- marker:`` in ``page``."""
    text = page.read_text()
    start = text.index(f"<!-- {marker}:")
    block = re.search(r"```bash\n(.*?)```", text[start:], flags=re.DOTALL)
    assert block is not None, f"{page.name} has no bash block after its {marker} marker"
    return block.group(1)


def run_block(block: str, folder: Path, env: Mapping[str, str]) -> list[str]:
    """Run ``block`` in ``folder`` with ``env``; the lines it printed (it must succeed)."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(env),
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout.splitlines()
