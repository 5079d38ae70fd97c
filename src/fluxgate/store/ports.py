"""Storage ports: the KV and object-store roles, as the gateway uses them.

On Workers they are KV and R2; locally SQLite and a directory. Both implementations keep
Cloudflare's limits (checked here once, by :func:`check_kv_write` and
:func:`check_object_write`), so code that works locally does not break on the edge.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ..imaging.image_bytes import ImageBytes

KV_MAX_KEY_BYTES = 512
KV_MAX_VALUE_BYTES = 25 * 1024 * 1024
KV_MAX_METADATA_BYTES = 1024
KV_MIN_TTL_SECONDS = 60
R2_MAX_KEY_BYTES = 1024
R2_MAX_CUSTOM_METADATA_BYTES = 2048
# ``IMAGE_RETENTION_DAYS`` at most (ten years; KV's expirations and R2's lifecycle rules
# take far more, but a larger value is a typo for "off").
MAX_RETENTION_DAYS = 3650


class StorageError(Exception):
    """The store refused or failed an operation."""


class KVLimitError(StorageError, ValueError):
    """The write breaks one of KV's documented limits (Cloudflare rejects it the same way)."""


def check_kv_key(key: str) -> None:
    size = len(key.encode())
    if size == 0 or key in (".", ".."):
        raise KVLimitError("KV keys must not be empty, '.' or '..'.")
    if size > KV_MAX_KEY_BYTES:
        raise KVLimitError(f"KV key is {size} bytes; the limit is {KV_MAX_KEY_BYTES}.")


def check_kv_write(
    key: str, value: str | bytes, ttl: int | None, metadata: Mapping[str, object] | None
) -> None:
    check_kv_key(key)
    size = len(value.encode() if isinstance(value, str) else value)
    if size > KV_MAX_VALUE_BYTES:
        raise KVLimitError(f"KV value is {size} bytes; the limit is {KV_MAX_VALUE_BYTES}.")
    if ttl is not None and ttl < KV_MIN_TTL_SECONDS:
        raise KVLimitError(f"KV expirationTtl is {ttl}s; the minimum is {KV_MIN_TTL_SECONDS}s.")
    if metadata is not None:
        meta_size = len(json.dumps(metadata, separators=(",", ":")).encode())
        if meta_size > KV_MAX_METADATA_BYTES:
            raise KVLimitError(f"KV metadata is {meta_size} bytes; the limit is 1024.")


def check_object_write(key: str, custom_metadata: Mapping[str, str]) -> None:
    size = len(key.encode())
    if size == 0 or size > R2_MAX_KEY_BYTES:
        raise StorageError(f"R2 key is {size} bytes; it must be 1-{R2_MAX_KEY_BYTES}.")
    meta = sum(len(k.encode()) + len(v.encode()) for k, v in custom_metadata.items())
    if meta > R2_MAX_CUSTOM_METADATA_BYTES:
        raise StorageError(f"R2 custom metadata is {meta} bytes; the limit is 2048.")


@dataclass(frozen=True)
class KVEntry:
    name: str
    metadata: dict[str, object] | None = None


@dataclass(frozen=True)
class KVPage:
    keys: list[KVEntry]
    cursor: str | None
    complete: bool


class KVStore(Protocol):
    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        """``cache_ttl``: how long an edge location may serve this key from its cache (KV's
        ``cacheTtl``, at least 30 s); a store with no edge cache ignores it."""
        ...

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def list(
        self, prefix: str, *, limit: int = 1000, cursor: str | None = None
    ) -> KVPage: ...


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str
    content_type: str
    # A mapping, not necessarily a dict: on Workers it is converted from JS only when read.
    custom_metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ObjectBody:
    """An object's bytes: ``chunks`` to read them in Python; ``stream()``, the runtime's
    own stream of them (R2's ``ReadableStream`` on Workers), which a response passes on as
    is, the bytes never entering Python; taken only by a response, since a body once taken
    is spoken for. ``None`` where ``chunks`` is the only way (locally)."""

    info: ObjectInfo
    chunks: AsyncIterator[bytes]
    stream: Callable[[], object] | None = None


class ObjectStore(Protocol):
    async def put(
        self,
        key: str,
        data: bytes | ImageBytes,
        *,
        content_type: str,
        custom_metadata: Mapping[str, str],
    ) -> ObjectInfo:
        """``data``: bytes, or a generated image as its runtime holds it (written as is)."""
        ...

    async def read_image(self, key: str) -> ImageBytes | None:
        """The whole object as image bytes of this runtime's kind (a ``b64_json`` hit)."""
        ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def exists(self, key: str) -> bool:
        """Whether the object is there, and nothing else: a download served from a cache
        asks only this, and on Workers reading an object's fields costs JS round trips."""
        ...

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> ObjectBody | None:
        """The object (or bytes ``start..end`` inclusive of it); ``info.size`` stays the
        whole object's size."""
        ...

    async def delete(self, key: str) -> None: ...

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix``, in key order (R2 lists in pages:
        the implementation follows them all). For bounded prefixes: an image's variants,
        or a local sweep."""
        ...


async def read_all(body: ObjectBody) -> bytes:
    return b"".join([chunk async for chunk in body.chunks])
