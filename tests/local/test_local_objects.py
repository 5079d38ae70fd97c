import pytest

from fluxgate.local.objects_dir import DirectoryObjects
from fluxgate.store.ports import StorageError, read_all

pytestmark = pytest.mark.anyio


@pytest.fixture
def store(tmp_path):
    return DirectoryObjects(tmp_path / "objects")


async def test_put_head_get_delete_with_metadata(store):
    info = await store.put(
        "images/a.png", b"\x89PNG data", content_type="image/png", custom_metadata={"seed": "7"}
    )
    assert info.size == 9 and info.content_type == "image/png"
    head = await store.head("images/a.png")
    assert head == info
    body = await store.get("images/a.png")
    assert body is not None and await read_all(body) == b"\x89PNG data"
    assert body.info.custom_metadata == {"seed": "7"}
    await store.delete("images/a.png")
    assert await store.head("images/a.png") is None
    assert await store.get("images/a.png") is None


async def test_large_objects_stream_in_chunks(store):
    data = bytes(range(256)) * 4096  # 1 MiB: several chunks
    await store.put("big.bin", data, content_type="application/octet-stream", custom_metadata={})
    body = await store.get("big.bin")
    chunks = [c async for c in body.chunks]
    assert len(chunks) > 1 and b"".join(chunks) == data


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a//b", ""])
async def test_unsafe_keys_are_refused(store, key):
    with pytest.raises(StorageError):
        await store.put(key, b"x", content_type="text/plain", custom_metadata={})


async def test_custom_metadata_is_capped_like_r2(store):
    with pytest.raises(StorageError):
        await store.put("k", b"x", content_type="text/plain", custom_metadata={"m": "x" * 2100})


async def test_no_temporary_files_are_left_behind(store, tmp_path):
    await store.put("images/b.png", b"1", content_type="image/png", custom_metadata={})
    leftovers = [
        p.name for p in (tmp_path / "objects" / "images").iterdir() if p.name.startswith(".tmp-")
    ]
    assert leftovers == []
