"""How a test states the runtimes it runs on, and what ``--no-fast-path`` sets for every test.

Each case runs a small test file with pytest (``pytester``) on the tests' own support
plugins (``tests/support/runtimes.py``, ``tests/support/config.py``), with stand-ins for
``client`` and ``kv`` that start nothing: what is checked is which tests are collected, on
which runtimes, and which collection errors say what.
"""

from __future__ import annotations

import pytest

from fluxgate.service.settings import Settings

from ..support.config import setting_vars
from ..support.workerd import var_value

STAND_INS = """
import pytest

pytest_plugins = ["tests.support.runtimes", "tests.support.config"]


@pytest.fixture
def client(runtime):
    return runtime


@pytest.fixture
def kv():
    return {}
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(STAND_INS)
    return pytester


def collected(suite: pytest.Pytester, source: str) -> tuple[list[str], str]:
    """The test ids collected from ``source``, and what pytest printed."""
    suite.makepyfile(test_case=source)
    result = suite.runpytest("--collect-only", "-q")
    out = result.stdout.str()
    ids = [line.split("::", 1)[1] for line in result.outlines if line.startswith("test_case.py::")]
    return ids, out


def test_a_test_runs_on_each_runtime_its_marker_names(suite):
    ids, _ = collected(
        suite,
        """
import pytest

@pytest.mark.runtimes("local", "worker")
def test_both(client): ...

@pytest.mark.runtimes("local", reason="moves the clock")
def test_local(client): ...
""",
    )
    assert ids == ["test_both[local]", "test_both[worker]", "test_local[local]"]


def test_a_module_states_it_once_and_its_unit_tests_run_once(suite):
    ids, _ = collected(
        suite,
        """
import pytest

pytestmark = pytest.mark.runtimes("local", "worker")

def test_api(client): ...

@pytest.mark.runtimes("local")
def test_white_box(client, kv): ...

def test_unit(): ...
""",
    )
    assert ids == ["test_api[local]", "test_api[worker]", "test_white_box[local]", "test_unit"]


@pytest.mark.parametrize(
    ("source", "says"),
    [
        pytest.param(
            "def test_x(client): ...",
            "test_case.py::test_x asks for 'client', which runs on a runtime, but states none",
            id="no marker",
        ),
        pytest.param(
            '@pytest.mark.runtimes("local", "worker")\ndef test_x(client, kv): ...',
            "test_case.py::test_x is marked to run on the worker runtime but asks for 'kv'",
            id="white-box on the worker",
        ),
        pytest.param(
            '@pytest.mark.runtimes("local")\ndef test_x(client): ...',
            "test_case.py::test_x is a black-box test kept from the Worker without a reason",
            id="no reason",
        ),
        pytest.param(
            '@pytest.mark.local_only(reason="old")\ndef test_x(client): ...',
            'is now @pytest.mark.runtimes("local", reason=...)',
            id="the old marker",
        ),
        pytest.param(
            '@pytest.mark.runtimes("local", "edge")\ndef test_x(client): ...',
            "names each of ('local', 'worker') at most once",
            id="an unknown runtime",
        ),
        pytest.param(
            '@pytest.mark.runtimes("local", "worker")\ndef test_x(): ...',
            "test_case.py::test_x is marked @pytest.mark.runtimes(...) but asks for nothing",
            id="a marker on a test of no runtime",
        ),
    ],
)
def test_what_does_not_fit_is_a_collection_error_saying_why(suite, source, says):
    _, out = collected(suite, "import pytest\n\n" + source)
    assert "no tests collected, 1 error" in out
    assert "ERROR collecting test_case.py" in out and says in out


FAST_PATH_CASE = """
import pytest

def test_default(settings):
    print("default", settings.fast_path)

@pytest.mark.settings(fast_path=True)
def test_stated(settings):
    print("stated", settings.fast_path)
"""


@pytest.mark.parametrize(
    ("options", "default", "stated"),
    [((), "True", "True"), (("--no-fast-path",), "False", "True")],
    ids=["as configured", "--no-fast-path"],
)
def test_no_fast_path_sets_the_setting_unless_a_test_states_it(suite, options, default, stated):
    suite.makepyfile(test_case=FAST_PATH_CASE)
    result = suite.runpytest("-s", *options)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"*default {default}*", f"*stated {stated}*"])


def test_the_worker_gets_the_setting_through_its_vars():
    """What the Worker's stack on workerd is started with: ``--var FAST_PATH=false``."""
    changed = setting_vars(Settings(fast_path=False))
    assert {name: var_value(value) for name, value in changed.items()} == {"FAST_PATH": "false"}
