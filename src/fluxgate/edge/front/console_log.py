"""Where the Worker's log lines go: the JavaScript ``console``, at each record's level.

workerd reports whatever a Worker writes to stderr at level ``error``, so the audit log
(INFO: a key created, a request refused) arrived in Workers Logs as errors and would set
off any alert on them. Each record goes to the console method of its level instead:
``console.log`` below WARNING, ``console.warn`` for warnings, ``console.error`` above.
"""

from __future__ import annotations

import logging

from js import console


class ConsoleHandler(logging.Handler):
    """One console call per record, at the record's level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted: logging's own report
            self.handleError(record)
            return
        if record.levelno >= logging.ERROR:
            console.error(line)
        elif record.levelno >= logging.WARNING:
            console.warn(line)
        else:
            console.log(line)


def send_to_console() -> None:
    """Give the ``fluxgate`` logger one console handler at INFO (idempotent)."""
    logger = logging.getLogger("fluxgate")
    if not any(isinstance(handler, ConsoleHandler) for handler in logger.handlers):
        handler = ConsoleHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
