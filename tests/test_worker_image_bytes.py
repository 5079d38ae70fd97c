"""On Workers, a generated image never becomes a Python object.

The Worker host runs the real Worker in Pyodide and counts Python's own allocations
(``tracemalloc``) while a request runs. The AI double answers with an image the size of a
real one (~1.2 MB, ~1.6 MB as base64): had the miss path read ``result.image``, decoded it,
hashed it or copied it for R2 in Python, the peak would hold at least one such copy.
"""

import base64
import hashlib
from collections.abc import Callable, Iterator

import httpx
import pytest

from .bodies import generate, generation
from .conftest import new_key
from .runtimes import WorkerHost

REAL_SIZE = generation("a harbour at night, in the rain", width=1024, height=768, steps=4)
# Far below one copy of the image (~1.2 MB) or of its base64 (~1.6 MB).
MOST_PYTHON_MAY_HOLD = 256 * 1024


@pytest.fixture
def worker(worker_host: WorkerHost) -> Iterator[httpx.Client]:
    worker_host.call("POST", "/ai/realistic", {"on": True})
    with httpx.Client(base_url=worker_host.base, timeout=60) as client:
        yield client


def python_peak(
    host: WorkerHost, request: Callable[[], httpx.Response]
) -> tuple[int, httpx.Response]:
    host.call("POST", "/python/allocations/start")
    try:
        response = request()
    finally:
        peak = host.call("POST", "/python/allocations/stop")["peak_bytes"]
    return peak, response


def test_a_miss_stores_a_real_size_image_without_copying_it_into_python(worker, worker_host):
    auth = new_key(worker)
    peak, response = python_peak(worker_host, lambda: generate(worker, auth, REAL_SIZE))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["bytes"] > 1_000_000  # a realistic image went through
    image = worker.get(body["data"][0]["url"]).content
    assert len(image) == body["bytes"]
    assert hashlib.sha256(image).hexdigest() == body["sha256"]  # hashed in JS, correctly
    assert peak < MOST_PYTHON_MAY_HOLD, f"Python held {peak} bytes during the miss"


def test_a_b64_json_hit_is_built_without_the_image_in_python(worker, worker_host):
    auth = new_key(worker)
    stored = generate(worker, auth, REAL_SIZE).json()
    ask = {**REAL_SIZE, "response_format": "b64_json"}
    peak, response = python_peak(worker_host, lambda: generate(worker, auth, ask))
    assert response.status_code == 200, response.text
    assert response.headers["x-cache"] == "HIT"
    image = base64.b64decode(response.json()["data"][0]["b64_json"])
    assert hashlib.sha256(image).hexdigest() == stored["sha256"]
    assert peak < MOST_PYTHON_MAY_HOLD, f"Python held {peak} bytes during the hit"
