"""The runtime's KV namespace and object bucket, seen from outside the gateway.

:class:`StorageDouble` is what a black-box test may do with them on either runtime: read
every KV entry as stored, look up, list and delete objects behind the gateway's back, and
(in process only) make them fail. :class:`LocalStorage` is that on the local stores,
:class:`WorkerdStorage` on Miniflare's KV and R2 behind the Worker, through the stack's
control port. :class:`FlakyKV` and :class:`FlakyObjects` are the local stores as the
gateway gets them (the white-box ``kv`` and ``objects``), whose calls can be made to fail
the way a real outage does: an exception from the awaited call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import anyio
import pytest

from fluxgate.imaging.image_bytes import ImageBytes
from fluxgate.local.kv_sqlite import SqliteKV
from fluxgate.local.objects_dir import DirectoryObjects
from fluxgate.store.ports import ObjectInfo, StorageError

from .clock import ClockDouble
from .runtimes import FAILS_STORE, on_worker
from .workerd import Workerd


class StorageDouble(Protocol):
    def kv_dump(self) -> list[dict[str, Any]]:
        """Every KV entry as stored: ``{"key", "value", "metadata"}`` each."""
        ...

    def object_exists(self, key: str) -> bool: ...

    def delete_object(self, key: str) -> None: ...

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, sorted."""
        ...

    def fail(
        self,
        *,
        kv_reads: tuple[str, ...] = (),
        kv_writes: tuple[str, ...] = (),
        object_writes: bool = False,
    ) -> None:
        """From now on, KV reads or writes of keys under these prefixes fail, and so do
        object writes if ``object_writes``: in process only (``FAILS_STORE``)."""
        ...


class FlakyKV:
    """A KV store whose writes (or reads) fail for keys with the given prefixes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_put_prefixes: tuple[str, ...] = ()
        self.fail_get_prefixes: tuple[str, ...] = ()
        self.reads: list[str] = []

    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        self.reads.append(key)
        if key.startswith(self.fail_get_prefixes or ("\0",)):
            raise StorageError("KV GET failed: 503 Service Unavailable")
        value: str | None = await self.inner.get(key, cache_ttl=cache_ttl)
        return value

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        if key.startswith(self.fail_put_prefixes or ("\0",)):
            raise StorageError("KV PUT failed: 429 Too Many Requests")
        await self.inner.put(key, value, ttl=ttl, metadata=metadata)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def list(self, prefix: str, *, limit: int = 1000, cursor: str | None = None) -> Any:
        return await self.inner.list(prefix, limit=limit, cursor=cursor)


class FlakyObjects:
    """An object store whose writes (``fail_puts``) or deletions (``fail_deletes``) can be
    made to fail."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.fail_puts = False
        self.fail_deletes = False
        self.calls: list[str] = []

    async def put(
        self,
        key: str,
        data: bytes | ImageBytes,
        *,
        content_type: str,
        custom_metadata: Mapping[str, str],
    ) -> ObjectInfo:
        if self.fail_puts:
            raise StorageError("R2 PUT failed: 500 We encountered an internal error")
        info: ObjectInfo = await self.inner.put(
            key, data, content_type=content_type, custom_metadata=custom_metadata
        )
        return info

    async def head(self, key: str) -> Any:
        self.calls.append("head")
        return await self.inner.head(key)

    async def exists(self, key: str) -> bool:
        self.calls.append("head")  # what R2 is asked: a HEAD
        return bool(await self.inner.exists(key))

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> Any:
        self.calls.append("get")
        return await self.inner.get(key, byte_range)

    async def read_image(self, key: str) -> Any:
        self.calls.append("get")
        return await self.inner.read_image(key)

    async def delete(self, key: str) -> None:
        if self.fail_deletes:
            raise StorageError("R2 DELETE failed: 500 We encountered an internal error")
        await self.inner.delete(key)

    async def list(self, prefix: str) -> Any:
        return await self.inner.list(prefix)


class LocalStorage:
    """The local KV and object stores seen from outside (:class:`WorkerdStorage` on
    workerd)."""

    def __init__(self, kv: FlakyKV, objects: FlakyObjects) -> None:
        self._kv = kv
        self._objects = objects

    def fail(
        self,
        *,
        kv_reads: tuple[str, ...] = (),
        kv_writes: tuple[str, ...] = (),
        object_writes: bool = False,
    ) -> None:
        self._kv.fail_get_prefixes = tuple(kv_reads)
        self._kv.fail_put_prefixes = tuple(kv_writes)
        self._objects.fail_puts = object_writes

    def kv_dump(self) -> list[dict[str, Any]]:
        rows = self._kv.inner._db.execute("SELECT key, value, metadata FROM kv").fetchall()
        return [{"key": key, "value": value, "metadata": meta} for key, value, meta in rows]

    def object_exists(self, key: str) -> bool:
        return anyio.run(self._objects.head, key) is not None

    def delete_object(self, key: str) -> None:
        anyio.run(self._objects.delete, key)

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, sorted (:class:`WorkerdStorage` lists R2)."""
        root = self._objects.inner.root
        keys = (
            path.relative_to(root).as_posix()
            for path in root.rglob("*")
            if path.is_file() and not path.name.endswith(".meta.json")
        )
        return sorted(key for key in keys if key.startswith(prefix))


class WorkerdStorage:
    """Miniflare's KV namespace and R2 bucket behind the Worker, seen from outside
    (:class:`LocalStorage` is the same on the local stores); they cannot be made to fail."""

    def __init__(self, stack: Workerd) -> None:
        self._stack = stack

    def kv_dump(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._stack.call("POST", "/kv/dump")
        return result

    def object_exists(self, key: str) -> bool:
        return self._stack.call("POST", "/r2/head", {"key": key}) is not None

    def delete_object(self, key: str) -> None:
        self._stack.call("POST", "/r2/delete", {"key": key})

    def object_keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix``, sorted."""
        return sorted(self._stack.call("POST", "/r2/list", {"prefix": prefix}))

    def fail(
        self,
        *,
        kv_reads: tuple[str, ...] = (),
        kv_writes: tuple[str, ...] = (),
        object_writes: bool = False,
    ) -> None:
        raise NotImplementedError(
            f'{FAILS_STORE}: mark the test @pytest.mark.runtimes("local", reason=FAILS_STORE)'
        )


@pytest.fixture
def kv(tmp_path: Path, clock: ClockDouble) -> Iterator[FlakyKV]:
    """The local KV namespace as the gateway gets it (white-box)."""
    store = SqliteKV(tmp_path / "kv.sqlite3", clock=clock)
    yield FlakyKV(store)
    store.close()


@pytest.fixture
def objects(tmp_path: Path) -> FlakyObjects:
    """The local object bucket as the gateway gets it (white-box)."""
    return FlakyObjects(DirectoryObjects(tmp_path / "objects"))


@pytest.fixture
def storage(request: pytest.FixtureRequest) -> StorageDouble:
    """The runtime's KV namespace and object bucket: every KV entry as stored, and objects
    looked up or deleted behind the gateway's back; in process also outages
    (``fail(kv_reads=prefixes, kv_writes=prefixes, object_writes=True)``)."""
    if on_worker(request):
        return WorkerdStorage(request.getfixturevalue("workerd"))
    return LocalStorage(request.getfixturevalue("kv"), request.getfixturevalue("objects"))
