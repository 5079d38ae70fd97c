"""The JSON log lines a request wrote, of one ``type`` (``audit``, ``access``).

In process they are the log records of the logger ``fluxgate.<type>``
(:class:`CapturedLines`); on workerd they are the Worker's console, what Workers Logs
collects (:class:`ConsoleLines`). Either is called to read the lines written so far during
the test, one dict a line.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

import pytest

from .runtimes import on_worker
from .workerd import Workerd


class LogLines(Protocol):
    def __call__(self) -> list[dict[str, Any]]:
        """The lines of this type written during the test so far, in order."""
        ...


class CapturedLines:
    """The lines of logger ``fluxgate.<kind>``, captured in process."""

    def __init__(self, kind: str, caplog: pytest.LogCaptureFixture) -> None:
        self._logger = f"fluxgate.{kind}"
        self._caplog = caplog
        caplog.set_level(logging.INFO, logger=self._logger)

    def __call__(self) -> list[dict[str, Any]]:
        records = self._caplog.records
        return [json.loads(r.message) for r in records if r.name == self._logger]


class ConsoleLines:
    """The JSON lines of type ``kind`` on the Worker's console since the stack's reset."""

    def __init__(self, kind: str, stack: Workerd) -> None:
        self._kind = kind
        self._stack = stack

    def __call__(self) -> list[dict[str, Any]]:
        console = self._stack.log_since_reset().splitlines()
        lines = [json.loads(x) for x in console if x.startswith('{"time"')]
        return [line for line in lines if line.get("type") == self._kind]


def log_lines(
    kind: str, caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest
) -> LogLines:
    if on_worker(request):
        return ConsoleLines(kind, request.getfixturevalue("workerd"))
    return CapturedLines(kind, caplog)


@pytest.fixture
def audit_lines(
    caplog: pytest.LogCaptureFixture, runtime: str, request: pytest.FixtureRequest
) -> LogLines:
    """The audit lines written during the test: one per refusal and per admin action."""
    return log_lines("audit", caplog, request)


@pytest.fixture
def access_lines(
    caplog: pytest.LogCaptureFixture, runtime: str, request: pytest.FixtureRequest
) -> LogLines:
    """The access lines written during the test, one per request."""
    return log_lines("access", caplog, request)
