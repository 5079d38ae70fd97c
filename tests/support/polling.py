"""Waiting for what happens after the response: async jobs, webhook deliveries."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0) -> T:
    """The first truthy value of ``predicate``, polled until ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def finished(client: httpx.Client, auth: dict[str, str], job: dict[str, Any] | str) -> Any:
    """The job (a submission's body, or its id) once it has succeeded or failed."""
    job_id = job if isinstance(job, str) else job["id"]

    def done() -> Any:
        body = client.get(f"/v1/jobs/{job_id}", headers=auth).json()
        return body if body["status"] in ("succeeded", "failed") else None

    return wait_for(done, timeout=20.0)
