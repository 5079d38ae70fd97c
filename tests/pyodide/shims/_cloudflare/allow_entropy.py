"""Entropy at import time is restricted in workerd only while it takes the deploy-time
memory snapshot; the Pyodide harness takes no snapshot, so the allowance is a no-op."""

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def allow_bad_entropy_calls(_count: int) -> Iterator[None]:
    yield
