"""Build workerd's Pyodide bundle from the npm ``pyodide`` package.

The bundle is what workerd's build makes in ``src/pyodide/helpers.bzl`` (``_python_bundle``):
three internal modules, ``pyodideRuntime-internal:pyodide.asm`` (Pyodide's Emscripten glue,
``pyodide.asm.mjs``, with text replacements that route WebAssembly compilation, the clock,
randomness and dynamic-library loading through workerd's own wrappers, forbid ``eval``, and
import those wrappers from the binary's ``pyodide-internal:builtin_wrappers``), the
interpreter ``pyodide.asm.wasm`` and the standard library ``python_stdlib.zip``.

The replacements are those of workerd's ``_REPLACEMENTS_COMMON`` and
``_REPLACEMENTS_COMMON_314`` as of the 2026-11-17 binary, whose ``builtin_wrappers`` no longer
exports ``reportUndefinedSymbolsPatched``. A replacement whose target is missing from the glue
means another Pyodide than the one these were written for: the required ones fail loudly.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from .capnp import Module, encode_bundle

_EVAL_REFUSED = (
    "(() => {throw new Error('Internal Emscripten code tried to eval, this should not "
    "happen, please file a bug report with your requirements.txt file\\'s contents')})()"
)
_PRELUDE = """
import {
    addEventListener,
    getRandomValues,
    location,
    monotonicDateNow,
    newWasmModule,
    patchedApplyFunc,
    patchedLoadLibData,
    wasmInstantiate,
    patched_PyEM_CountFuncParams,
} from "pyodide-internal:builtin_wrappers";
"""
_LOAD_LIB_DATA = """
        function loadLibData(){
            var libData = patchedLoadLibData(Module, libName, flags.rpath);
            return flags.loadAsync ? Promise.resolve(libData) : libData;
        }
        function dummiedOutOrigLoadLibData(){
        """
_TABLE_BASE = "var tableBase=metadata.tableSize?wasmTable.length:0;"
_FATAL = 'console.error("Recursive call to fatal_error. Inner error was:");'
_EXPORT = "export default _createPyodideModule;"

# (target, replacement, required): applied in order, every occurrence.
REPLACEMENTS: list[tuple[str, str, bool]] = [
    ("new WebAssembly.Module", "newWasmModule", True),
    ("WebAssembly.instantiate", "wasmInstantiate", True),
    ("Date.now", "monotonicDateNow", False),
    ("crypto.getRandomValues(", "getRandomValues(Module, ", False),
    ("eval(func)", _EVAL_REFUSED, False),
    ("eval(data)", _EVAL_REFUSED, False),
    ("eval(UTF8ToString(ptr))", _EVAL_REFUSED, False),
    ("function loadLibData(){", _LOAD_LIB_DATA, True),
    ("getMemory(", "Module.getMemoryPatched(Module, libName, ", True),
    (
        "function _PyEM_CountFuncParams(func){",
        "function _PyEM_CountFuncParams(func){ return patched_PyEM_CountFuncParams(Module, func);",
        False,
    ),
    (
        _TABLE_BASE,
        _TABLE_BASE + "Module.snapshotDebug && console.log('loadWebAssemblyModule', libName, "
        "memoryBase, tableBase);",
        False,
    ),
    (_FATAL, _FATAL + "\ntry { API.on_fatal?.(e); } catch(e2) { console.error(e2); }\n", False),
    (_EXPORT, _PRELUDE + _EXPORT + " export { _createPyodideModule };", True),
]


def pyodide_version(pyodide_dir: Path) -> str:
    version: str = json.loads((pyodide_dir / "package.json").read_text())["version"]
    return version


def patched_glue(glue: str) -> str:
    for target, replacement, required in REPLACEMENTS:
        if required and target not in glue:
            raise SystemExit(f"pyodide.asm.mjs has no {target!r}: not a Pyodide 314 glue file?")
        glue = glue.replace(target, replacement)
    return glue


def build_bundle(pyodide_dir: Path) -> bytes:
    glue = patched_glue((pyodide_dir / "pyodide.asm.mjs").read_text(encoding="utf-8"))
    prefix = "pyodideRuntime-internal:"
    interpreter = (pyodide_dir / "pyodide.asm.wasm").read_bytes()
    stdlib = (pyodide_dir / "python_stdlib.zip").read_bytes()
    return encode_bundle(
        [
            Module(prefix + "pyodide.asm", "src", glue.encode()),
            Module(prefix + "pyodide.asm.wasm", "wasm", interpreter),
            Module(prefix + "python_stdlib.zip", "data", stdlib),
        ]
    )


def integrity(data: bytes) -> str:
    """The Subresource Integrity form workerd compares: ``sha256-<base64>``."""
    return "sha256-" + base64.b64encode(hashlib.sha256(data).digest()).decode()
