"""Where the local runtime's log lines go: stderr, one line each, as written.

Python's ``logging`` has no handler by default and its last-resort handler drops INFO, so
without this the audit log (INFO, one JSON line per event) would never leave the process.
(On Workers, stderr would reach Workers Logs at level ``error``: the Worker writes to the
JavaScript console instead, ``fluxgate.edge.front.console_log``.)
"""

from __future__ import annotations

import logging
import sys


class _StderrLines(logging.StreamHandler):  # type: ignore[type-arg]
    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))


def send_to_stderr() -> None:
    """Give the ``fluxgate`` logger one stderr handler at INFO (idempotent)."""
    logger = logging.getLogger("fluxgate")
    if not any(isinstance(h, _StderrLines) for h in logger.handlers):
        logger.addHandler(_StderrLines())
    logger.setLevel(logging.INFO)
