"""The tests' fixtures, on both runtimes: registered from ``tests/support``.

An API test states the runtimes it runs on, ``@pytest.mark.runtimes("local", "worker")``
(``tests/support/runtimes.py``): ``[local]`` against the FastAPI app on the local runtime's
embedded stores, in process, and ``[worker]`` against the Worker as deployed, on real
workerd (``tests/support/workerd.py``). The doubles it sees (``ai``, ``guard``, ``scout``,
``clock``, ``storage``, ``jobs``, ``audit_lines``, ...) are each one module of
``tests/support``, a Protocol with each runtime's implementation; the fixture is typed by
the Protocol. What only exists in process (``gateway``, ``kv``, ``ledger``, ...) is
white-box: a test asking for it is marked ``runtimes("local")``, and is a collection error
if marked for ``worker``.

Configuration is declared, never changed mid-test: ``@pytest.mark.settings(field=value)``,
``secrets``, ``unbound`` and ``rate_limits`` configure both runtimes
(``tests/support/config.py``); ``--no-fast-path`` runs every test with ``fast_path=False``.
"""

import pytest

# The support modules assert too (a key made, a policy stored): rewritten, they say what failed.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = [
    "tests.support.config",
    "tests.support.runtimes",
    "tests.support.summary",
    "tests.support.workerd",
    "tests.support.clients",
    "tests.support.admin",
    "tests.support.model",
    "tests.support.guard",
    "tests.support.scout",
    "tests.support.clock",
    "tests.support.storage",
    "tests.support.jobs",
    "tests.support.logs",
    "tests.support.usage",
    "tests.support.sign_in",
    "tests.support.transformer",
    "tests.support.local",
    "pytester",  # tests/project/test_runtime_markers.py runs small suites on these plugins
]
