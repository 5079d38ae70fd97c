"""Self time by function in a V8 CPU profile (``bench/worker.mjs --js-profile FILE``).

    .venv/bin/python bench/profile_summary.py FILE [TOP]

Pyodide's WebAssembly functions have no names; they are counted together as the Python
interpreter. The JS frames (the bindings' doubles, the SDK's glue, V8's GC) keep theirs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path


def self_times(profile: dict) -> Counter[str]:
    nodes = {n["id"]: n["callFrame"] for n in profile["nodes"]}
    times: Counter[str] = Counter()
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=True):
        frame = nodes[sample]
        name = frame["functionName"] or "(anonymous)"
        if name.startswith("wasm-function"):
            times["wasm (the Python interpreter)"] += delta
        else:
            times[f"{name} {frame['url'].rsplit('/', 1)[-1]}:{frame['lineNumber']}"] += delta
    return times


def main(path: str, top: int = 25) -> None:
    times = self_times(json.loads(Path(path).read_text()))
    total = sum(times.values())
    print(f"total {total / 1000:.1f} ms")
    for label, micros in times.most_common(top):
        print(f"{micros / 1000:9.1f} ms {100 * micros / total:5.1f}%  {label}")


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
