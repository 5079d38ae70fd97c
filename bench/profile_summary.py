"""Summarise a V8 CPU profile (``bench/worker.mjs --js-profile FILE``): self time by
function, and total time under a few frames of interest. Pyodide's WebAssembly frames
have no names; they are counted together as ``wasm`` (the Python interpreter)."""

from __future__ import annotations

import json
import sys
from collections import Counter


def main(path: str, top: int = 25) -> None:
    profile = json.load(open(path))
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    self_time: Counter[str] = Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]["callFrame"]
        name = frame["functionName"] or "(anonymous)"
        where = frame["url"].rsplit("/", 1)[-1]
        label = (
            "wasm (Pyodide)"
            if name.startswith("wasm-function")
            else f"{name} {where}:{frame['lineNumber']}"
        )
        self_time[label] += delta
    total = sum(self_time.values())
    print(f"total {total / 1000:.1f} ms")
    for label, micros in self_time.most_common(top):
        print(f"{micros / 1000:9.1f} ms {100 * micros / total:5.1f}%  {label}")
    del parent


if __name__ == "__main__":
    main(sys.argv[1])
