"""The benchmark's in-process KV and R2 (``host/memory_stores.mjs``) answer like
Miniflare's simulators, which the tests use: the same operations, the same values, the same
refusals (limits, bad options), the same result shapes."""

import json
import subprocess

import pytest

from .runtimes import ROOT, host_prerequisites, node


@pytest.fixture(scope="module")
def both() -> dict:
    reason = host_prerequisites()
    if reason is not None:
        pytest.skip(f"Node and node_modules are needed: {reason}")
    proc = subprocess.run(
        [node() or "node", str(ROOT / "tests" / "stores_parity.mjs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("store", ["kv", "r2"])
def test_memory_doubles_answer_like_miniflare(both, store):
    miniflare, memory = both["miniflare"][store], both["memory"][store]
    assert miniflare.keys() == memory.keys()
    differing = {op: (miniflare[op], memory[op]) for op in miniflare if miniflare[op] != memory[op]}
    assert not differing, differing


def test_the_parity_run_exercises_refusals_too(both):
    refused = [op for op, value in both["miniflare"]["kv"].items() if value == "error"]
    refused += [op for op, value in both["miniflare"]["r2"].items() if value == "error"]
    assert {"get_short_cache_ttl", "put_short_ttl", "long_key", "big_metadata"} <= set(refused)
