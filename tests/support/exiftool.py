"""exiftool, the independent reader of the AI-disclosure XMP (Debian's
libimage-exiftool-perl, installed by .ci/run)."""

from __future__ import annotations

import os
import shutil

import pytest


def exiftool_path() -> str:
    """exiftool, or the test skips (only where .ci/run could not install it) or fails."""
    found = shutil.which("exiftool")
    if found is not None:
        return found
    reason = os.environ.get("FLUXGATE_NO_SYSTEM_PACKAGES")
    if reason:
        pytest.skip(f"exiftool could not be installed on this machine: {reason}")
    pytest.fail("exiftool is needed (apt-get install libimage-exiftool-perl; .ci/run does)")
