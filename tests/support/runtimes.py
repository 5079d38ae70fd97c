"""Which runtimes a test runs on: stated by a marker, checked as the tests are collected.

A test that asks for a fixture answered by a runtime (``client``, ``async_client``,
``audit_lines``, ... all ask for ``runtime``) runs once per runtime its marker names:

* ``@pytest.mark.runtimes("local", "worker")``: the FastAPI app on the embedded stores, in
  process, and the Worker as deployed on real workerd (a module states it once with
  ``pytestmark``);
* ``@pytest.mark.runtimes("local", reason=...)``: a black-box test that cannot run on the
  Worker says why (:data:`MOVES_CLOCK`, :data:`FAILS_STORE`, :data:`HOLDS_QUEUE`, or its own
  words): what it needs is something workerd lets nobody do from outside;
* ``@pytest.mark.runtimes("local")``: a white-box test, one that reaches into the in-process
  runtime (:data:`IN_PROCESS`: ``gateway``, ``kv``, ``ledger``, ...); the fixture is the
  reason.

Nothing is inferred and nothing is dropped in silence: a test that asks for ``client`` and
states no runtimes, a test marked for ``worker`` that asks for an in-process fixture, and a
black-box test kept from the Worker without a reason are collection errors, each saying so.
A marker on a test that asks for no runtime at all is ignored when it comes from its module
(a module may hold unit tests beside its API tests) and an error on the test itself.
"""

from __future__ import annotations

import pytest

RUNTIMES = ("local", "worker")
MARKER = "runtimes"

# Why a black-box test runs on the local runtime only.
MOVES_CLOCK = "moves the clock; workerd's cannot be moved from outside"
FAILS_STORE = "makes KV or R2 fail; workerd's bindings cannot be made to fail from outside"
HOLDS_QUEUE = "pauses or drains the job queue's consumer; workerd gives no handle on it"

_OBJECT = "an object of the in-process runtime"
# The white-box fixtures: what exists in process only, and why it has no worker side.
IN_PROCESS = {
    "gateway": _OBJECT,
    "local_runtime": _OBJECT,
    "make_runtime": _OBJECT,
    "ports": _OBJECT,
    "kv": _OBJECT,
    "objects": _OBJECT,
    "ledger": _OBJECT,
    "coalescer": _OBJECT,
    "catalog": _OBJECT,
    "idempotency_store": _OBJECT,
    "usage_event_store": _OBJECT,
    "images": "counts or fails the image transformer; Miniflare's Images binding does neither",
    "usage_events": "reads Analytics Engine data points back; Miniflare's dataset keeps none",
}
# The fixtures through which a test usually comes to ask for ``runtime``, for the errors.
ON_A_RUNTIME = ("client", "async_client", "audit_lines", "access_lines", "runtime")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        'runtimes(*names, reason=None): the runtimes an API test runs on ("local", "worker");'
        " a reason when a black-box test leaves out the Worker",
    )


def runtimes_of(metafunc: pytest.Metafunc) -> tuple[str, ...]:
    """The runtimes the test states, checked against what it asks for; a collection error
    (``CollectError``) when they do not fit."""
    node = metafunc.definition
    if node.get_closest_marker("local_only") is not None:
        raise pytest.Collector.CollectError(
            f"{node.nodeid}: @pytest.mark.local_only(reason=...) is now"
            f' @pytest.mark.{MARKER}("local", reason=...)'
        )
    marker = node.get_closest_marker(MARKER)
    asks = [name for name in ON_A_RUNTIME if name in metafunc.fixturenames]
    if not asks:
        if any(mark.name == MARKER for mark in node.own_markers):
            raise pytest.Collector.CollectError(
                f"{node.nodeid} is marked @pytest.mark.{MARKER}(...) but asks for nothing that"
                f" runs on a runtime ({', '.join(ON_A_RUNTIME)}): drop the marker"
            )
        return ()
    if marker is None:
        raise pytest.Collector.CollectError(
            f"{node.nodeid} asks for {asks[0]!r}, which runs on a runtime, but states none:"
            f' mark it @pytest.mark.{MARKER}("local", "worker") (or its module, with'
            ' pytestmark), or @pytest.mark.runtimes("local", reason=...) if it cannot run on'
            " the Worker"
        )
    names = tuple(marker.args)
    unknown = [name for name in names if name not in RUNTIMES]
    extra = set(marker.kwargs) - {"reason"}
    if not names or unknown or extra or len(set(names)) != len(names):
        raise pytest.Collector.CollectError(
            f"{node.nodeid}: @pytest.mark.{MARKER}{names!r} names each of {RUNTIMES!r} at most"
            " once, at least one of them, and takes no keyword but reason"
        )
    white_box = {name: why for name, why in IN_PROCESS.items() if name in metafunc.fixturenames}
    if "worker" in names and white_box:
        found = "; ".join(f"{name!r} ({why})" for name, why in white_box.items())
        raise pytest.Collector.CollectError(
            f"{node.nodeid} is marked to run on the worker runtime but asks for {found}, which"
            f' the Worker on workerd does not have: mark it @pytest.mark.{MARKER}("local")'
        )
    if "worker" not in names and not white_box and not marker.kwargs.get("reason"):
        raise pytest.Collector.CollectError(
            f"{node.nodeid} is a black-box test kept from the Worker without a reason: say"
            f' why, @pytest.mark.{MARKER}("local", reason=...)'
        )
    return tuple(runtime for runtime in RUNTIMES if runtime in names)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    runtimes = runtimes_of(metafunc)
    if runtimes:
        metafunc.parametrize("runtime", runtimes, indirect=True)


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    """The runtime under test, ``local`` or ``worker`` (parametrized from the marker)."""
    return str(request.param)


def on_worker(request: pytest.FixtureRequest) -> bool:
    """Whether the test being set up runs on the Worker (a test that asks for no runtime
    runs in process)."""
    if "runtime" not in request.fixturenames:
        return False
    return bool(request.getfixturevalue("runtime") == "worker")
