"""The layering as a request walks it, on the local server: from the outermost layer down,
no module is entered again on its own chain of calls and no call climbs a layer
(``tests/support/module_walk.py``). The Worker's walks, from its entry, are the Pyodide
harness's (``tests/pyodide/cases.py``)."""

import asyncio

import pytest

from ..support.module_walk import Summary
from ..support.walks import REQUESTS, local_walks


@pytest.fixture(scope="module")
def walks() -> dict[str, Summary]:
    return asyncio.run(local_walks())


@pytest.mark.parametrize("name", REQUESTS)
def test_a_request_enters_each_module_once_on_the_way_down(walks, name):
    walk = walks[name]
    assert walk.steps, "nothing was walked"
    assert (walk.re_entries, walk.climbs) == ([], []), walk.report(name) + "\n" + walk.walk()
