"""The local KV keeps Workers KV's rules, so what fails on Cloudflare fails here."""

import pytest

from fluxgate.local.kv_sqlite import SqliteKV
from fluxgate.store.ports import KVLimitError

from ..support.clock import Clock

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path, clock):
    kv = SqliteKV(tmp_path / "kv.sqlite3", clock=clock)
    yield kv
    kv.close()


async def test_get_put_delete(store):
    assert await store.get("a") is None
    await store.put("a", "één")
    assert await store.get("a") == "één"
    await store.delete("a")
    assert await store.get("a") is None


async def test_ttl_expires_entries(store, clock: Clock):
    await store.put("k", "v", ttl=60)
    clock.advance(59)
    assert await store.get("k") == "v"
    clock.advance(1)
    assert await store.get("k") is None


@pytest.mark.parametrize(
    ("key", "value", "ttl", "metadata"),
    [
        ("k" * 513, "v", None, None),
        ("", "v", None, None),
        ("..", "v", None, None),
        ("k", "v", 59, None),
        ("k", "v", None, {"m": "x" * 1100}),
    ],
)
async def test_writes_over_kv_limits_are_refused(store, key, value, ttl, metadata):
    with pytest.raises(KVLimitError):
        await store.put(key, value, ttl=ttl, metadata=metadata)


async def test_values_over_25_mib_are_refused(store):
    await store.put("ok", "x" * (25 * 1024 * 1024))
    with pytest.raises(KVLimitError):
        await store.put("big", "x" * (25 * 1024 * 1024 + 1))


async def test_512_byte_keys_are_allowed_and_counted_in_bytes(store):
    await store.put("k" * 512, "v")
    with pytest.raises(KVLimitError):
        await store.put("é" * 257, "v")  # 514 bytes


async def test_list_by_prefix_in_key_order_with_metadata_and_cursor(store):
    for i in range(5):
        await store.put(f"p:{i}", "v", metadata={"i": i})
    await store.put("q:0", "v")
    first = await store.list("p:", limit=2)
    assert [e.name for e in first.keys] == ["p:0", "p:1"]
    assert first.keys[0].metadata == {"i": 0}
    assert not first.complete and first.cursor
    rest = await store.list("p:", cursor=first.cursor)
    assert [e.name for e in rest.keys] == ["p:2", "p:3", "p:4"]
    assert rest.complete and rest.cursor is None


async def test_expired_entries_are_not_listed(store, clock):
    await store.put("p:old", "v", ttl=60)
    clock.advance(61)
    assert (await store.list("p:")).keys == []
