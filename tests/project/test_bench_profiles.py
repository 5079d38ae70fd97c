"""The benchmark's V8 profile reader says where the time went, not where it did not.

The Worker benchmark profiles workerd in its full run only (``bench/workerd_profile.py``:
V8's samples by category), which CI's quick run skips; its reader is checked here on the
real Pyodide interpreter's exports and on a profile made by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYODIDE_WASM = ROOT / "node_modules" / "pyodide" / "pyodide.asm.wasm"


def bench_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


profile = bench_module("workerd_profile")


@pytest.mark.skipif(not PYODIDE_WASM.is_file(), reason="npm ci installs pyodide")
def test_the_interpreters_functions_are_named_by_its_exports():
    names = profile.export_names(PYODIDE_WASM)
    by_name = {name: index for index, name in names.items()}
    assert len(names) > 5000
    assert names[0].startswith("import:")  # imported functions come first in the index
    assert {"_PyEval_EvalFrameDefault", "JsProxy_create", "PyObject_Vectorcall"} <= set(by_name)


def node(node_id: int, function: str, url: str = "", children: tuple[int, ...] = ()) -> dict:
    frame = {"functionName": function, "url": url, "lineNumber": 0, "columnNumber": 0}
    return {"id": node_id, "callFrame": frame, "children": list(children)}


def test_each_sample_counts_once_in_the_category_of_its_innermost_frame():
    # wasm-function[3000] is the interpreter's (the module with the highest index), named by
    # its exports; [7] is another module's, left unnamed.
    made = {
        "nodes": [
            node(1, "(root)", children=(2, 3, 4, 5, 6, 7)),
            node(2, "wasm-function[3000]", "wasm://interpreter"),
            node(3, "wasm-function[3001]", "wasm://interpreter"),
            node(4, "wasm-function[7]", "wasm://extension"),
            node(5, "get"),  # a native API function: no script
            node(6, "(garbage collector)"),
            node(7, "callPyObject", "pyodideRuntime-internal:pyodide.asm"),
        ],
        "samples": [2, 2, 3, 4, 5, 6, 7, 2],
        # V8's: the time since the sample before; a sample is held until the next one
        "timeDeltas": [0, 100, 100, 100, 100, 100, 100, 900],
    }
    names = {3000: "_PyEval_EvalFrameDefault", 3001: "JsProxy_create"}
    read = profile.analyse([made, made], requests=2, names=names)
    ms = read.by_category
    # two profiles over two requests: one profile's µs, per request
    assert ms[profile.PYTHON] == pytest.approx(0.3)  # the interpreter twice, the extension
    # a JsProxy function (0.1), and Pyodide's JS glue held 900 µs before the last sample:
    # a gap in sampling, counted as four median intervals at most (0.4)
    assert ms[profile.FFI] == pytest.approx(0.5)
    assert ms[profile.NATIVE] == pytest.approx(0.1)
    assert ms[profile.GC] == pytest.approx(0.1)
    assert read.busy_ms() == pytest.approx(1.0)
    functions = {function for _, function, _ in read.top}
    assert {"_PyEval_EvalFrameDefault", "JsProxy_create", "wasm-function[7]"} <= functions
