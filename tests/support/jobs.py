"""The runtime's job queue and job records, as a test feeds and reads them.

:class:`JobsDouble` is what a black-box test may do on either runtime: send a message to
the queue, have one delivered and handled, read a job's record as the gateway stores it,
and (in process only) pause, resume and drain the queue's consumer. :class:`LocalJobs` is
that on the local SQLite queue, :class:`WorkerdJobs` on the Worker's queue producer and its
jobs' Durable Objects, through the stack's control port.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
import pytest
from fastapi.testclient import TestClient

from fluxgate.local.jobs_sqlite import QueueWorker, SqliteQueue
from fluxgate.local.runtime import LocalRuntime
from fluxgate.service.gateway import JobPorts, Ports

from .runtimes import HOLDS_QUEUE, on_worker
from .workerd import Workerd

_HELD = f'{HOLDS_QUEUE}: mark the test @pytest.mark.runtimes("local", reason=HOLDS_QUEUE)'


class JobsDouble(Protocol):
    def send(self, message: Mapping[str, Any]) -> None:
        """Put ``message`` on the job queue, as the gateway's producer does."""
        ...

    def deliver(self, message: Mapping[str, Any]) -> None:
        """The consumer's delivery of ``message`` (a redelivery, say), once handled."""
        ...

    def record(self, job_id: str) -> dict[str, Any] | None:
        """The job's record as stored, or ``None``."""
        ...

    def pause(self) -> None:
        """Stop the consumer (in process only: ``HOLDS_QUEUE``)."""
        ...

    def resume(self) -> None:
        """Start the consumer again (in process only)."""
        ...

    def drain(self, timeout: float = 10.0) -> None:
        """Until the queue holds nothing (in process only)."""
        ...


class LocalJobs:
    """The local job queue and job records (:class:`WorkerdJobs` on workerd)."""

    def __init__(self, ports: JobPorts, worker: QueueWorker, client: TestClient) -> None:
        assert isinstance(ports.queue, SqliteQueue)
        self._queue = ports.queue
        self._store = ports.store
        self._worker = worker
        assert client.portal is not None, "the client's lifespan runs (inside its with block)"
        self._portal = client.portal

    def send(self, message: Mapping[str, Any]) -> None:
        self._portal.call(self._queue.send, dict(message))

    def pause(self) -> None:
        self._portal.call(self._worker.stop)

    def resume(self) -> None:
        async def start() -> None:
            self._worker.start()

        self._portal.call(start)

    def deliver(self, message: Mapping[str, Any]) -> None:
        """The consumer's delivery of ``message`` (a redelivery, say), once handled."""
        self.send(message)
        self.drain()

    def drain(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.pending():
            assert time.monotonic() < deadline, "the job queue did not drain"
            time.sleep(0.02)

    def record(self, job_id: str) -> dict[str, Any] | None:
        job = self._portal.call(self._store.get, job_id)
        return None if job is None else job.as_dict()


class WorkerdJobs:
    """The job queue's producer and the job records (:class:`LocalJobs` locally); its
    consumer cannot be paused or waited for from outside."""

    def __init__(self, stack: Workerd) -> None:
        self._stack = stack

    def send(self, message: Mapping[str, Any]) -> None:
        self._stack.call("POST", "/queues/send", {"body": dict(message)})

    def deliver(self, message: Mapping[str, Any]) -> None:
        """The consumer's delivery of ``message`` (a redelivery, say), once handled."""
        result = self._stack.call("POST", "/queues/deliver", {"body": dict(message)})
        # The handler ran to its end and acknowledged the message (it acks each one it
        # has dealt with, and retries those it could not).
        assert result["outcome"] == "ok" and result["explicitAcks"] == [result["id"]], result

    def record(self, job_id: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._stack.call("POST", "/jobs/get", {"job_id": job_id})
        return result

    def pause(self) -> None:
        raise NotImplementedError(_HELD)

    def resume(self) -> None:
        raise NotImplementedError(_HELD)

    def drain(self, timeout: float = 10.0) -> None:
        raise NotImplementedError(_HELD)


@pytest.fixture
def jobs(client: httpx.Client, request: pytest.FixtureRequest) -> JobsDouble:
    """The runtime's job queue (send a message, or have one delivered and handled; in
    process also pause and resume its consumer, wait until it is drained) and its job
    records, as the gateway stores them."""
    if on_worker(request):
        return WorkerdJobs(request.getfixturevalue("workerd"))
    runtime: LocalRuntime = request.getfixturevalue("local_runtime")
    ports: Ports = request.getfixturevalue("ports")
    assert ports.jobs is not None and runtime.worker is not None
    assert isinstance(client, TestClient)
    return LocalJobs(ports.jobs, runtime.worker, client)
