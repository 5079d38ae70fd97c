"""The Python releases a workerd binary knows, and the one a Worker's configuration selects.

The table is the ``releases`` constant of ``src/pyodide/pyodide_extra.capnp`` (a
``List(PythonSnapshotRelease)``), compiled into the binary as a Cap'n Proto constant. Each
release names its compatibility flag, the bundle file workerd looks for in
``--pyodide-bundle-disk-cache-dir`` (``getPythonBundleName`` in
``src/workerd/api/pyodide/pyodide.c++``), the real Pyodide version it runs and the SHA-256
(SRI form) the bundle must have (``verifyPyodideBundleIntegrity``).

Which release a Worker gets (``getPythonSnapshotRelease``): the enabled Python flag with the
highest ordinal, i.e. the latest entry of the table whose flag is on. ``python_workers``
implies ``python_workers_314`` from the compatibility date 2026-09-08
(``src/workerd/io/compatibility-date.capnp``).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

# PythonSnapshotRelease's pointer fields, in order; data word 0 is ``backport`` (Int64).
_FIELDS = (
    "pyodide",
    "pyodide_revision",
    "packages",
    "baseline_snapshot_hash",
    "field_name",
    "flag_name",
    "real_pyodide_version",
    "integrity",
)
_ANCHOR = b"\0pythonWorkers20250116\0"  # a flag name every binary since 2025 carries
IMPLIED_314_FROM = "2026-09-08"


@dataclass(frozen=True)
class Release:
    """One Python release of workerd."""

    flag_name: str  # camelCase, as in the schema: pythonWorkers314
    pyodide: str  # the release's name for its Pyodide ("dev" for the development release)
    pyodide_revision: str
    backport: int
    real_pyodide_version: str  # the npm ``pyodide`` version the bundle is built from
    integrity: str  # sha256-<base64>

    @property
    def bundle_file(self) -> str:
        """The file name workerd looks for in its bundle cache directory."""
        if self.pyodide == "dev":
            return "pyodide_dev.capnp.bin"
        return f"pyodide_{self.pyodide}_{self.pyodide_revision}_{self.backport}.capnp.bin"

    @property
    def checked(self) -> bool:
        """workerd does not check the development release's bundle."""
        return self.pyodide != "dev"


def _text(blob: bytes, at: int) -> str:
    word = struct.unpack_from("<Q", blob, at)[0]
    if word == 0:
        return ""
    if word & 3 != 1 or (word >> 32) & 7 != 2:
        raise ValueError("not a text pointer")
    offset = (word >> 2) & 0x3FFFFFFF
    if offset & 0x20000000:
        offset -= 0x40000000
    start = at + 8 + offset * 8
    return blob[start : start + (word >> 35)].rstrip(b"\0").decode()


def _decode(blob: bytes, tag_at: int) -> list[Release] | None:
    """The composite list whose tag word is at ``tag_at``, if it is the releases table."""
    tag = struct.unpack_from("<Q", blob, tag_at)[0]
    count, data_words, pointers = (tag >> 2) & 0x3FFFFFFF, (tag >> 32) & 0xFFFF, tag >> 48
    if tag & 3 or not (2 <= count <= 64 and data_words == 1 and len(_FIELDS) <= pointers <= 16):
        return None
    found = []
    try:
        for index in range(count):
            at = tag_at + 8 + index * 8 * (data_words + pointers)
            fields = {name: _text(blob, at + 8 * (1 + k)) for k, name in enumerate(_FIELDS)}
            found.append(
                Release(
                    flag_name=fields["flag_name"],
                    pyodide=fields["pyodide"],
                    pyodide_revision=fields["pyodide_revision"],
                    backport=struct.unpack_from("<q", blob, at)[0],
                    real_pyodide_version=fields["real_pyodide_version"],
                    integrity=fields["integrity"],
                )
            )
    except (ValueError, UnicodeDecodeError):
        return None
    return found if any(r.flag_name == "pythonWorkers20250116" for r in found) else None


def read_releases(binary: Path) -> list[Release]:
    """The releases table of a workerd binary, in the schema's order (lowest ordinal first).

    The constant's text sits just after the list it belongs to, so the list's tag word is
    searched for in the 16 KiB before the first flag name."""
    blob = binary.read_bytes()
    anchor = blob.find(_ANCHOR)
    if anchor < 0:
        raise SystemExit(f"{binary}: no Python releases table (not a workerd binary?)")
    for tag_at in range(max(0, anchor - 0x4000) // 8 * 8, anchor, 8):
        table = _decode(blob, tag_at)
        if table is not None:
            return table
    raise SystemExit(f"{binary}: could not decode the Python releases table")


def _camel(flag: str) -> str:
    """``python_workers_314`` -> ``pythonWorkers314`` (the schema's field spelling)."""
    head, *rest = flag.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def selected_release(releases: list[Release], date: str, flags: list[str]) -> Release:
    """The release a Worker with this compatibility date and these flags runs on."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
        raise SystemExit(f"compatibility_date {date!r} is not YYYY-MM-DD")
    enabled = {_camel(flag) for flag in flags if flag.startswith("python_workers_")}
    if "python_workers" in flags and date >= IMPLIED_314_FROM:
        enabled.add("pythonWorkers314")
    chosen = [release for release in releases if release.flag_name in enabled]
    if not chosen:
        raise SystemExit(
            f"cannot tell the Python release of compatibility_date {date} with flags {flags}: "
            "name a python_workers_<release> flag, or use a date from "
            f"{IMPLIED_314_FROM} with python_workers"
        )
    return chosen[-1]
