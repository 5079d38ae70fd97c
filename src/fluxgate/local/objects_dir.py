"""R2 on a directory: the local peer of an R2 bucket.

Writes are atomic (temporary file, then rename) so a crash never leaves a half-written
image that a cache entry could point at. Metadata sits beside each object as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ..imaging.image_bytes import ImageBytes, InProcessImage, as_python_bytes
from ..store.ports import ObjectBody, ObjectInfo, StorageError, check_object_write, read_all

_SAFE_KEY = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
CHUNK = 256 * 1024


class DirectoryObjects:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _SAFE_KEY.match(key) or any(part in (".", "..") for part in key.split("/")):
            raise StorageError(f"object key {key!r} is not allowed in the local store")
        return self.root / key

    async def put(
        self,
        key: str,
        data: bytes | ImageBytes,
        *,
        content_type: str,
        custom_metadata: Mapping[str, str],
    ) -> ObjectInfo:
        check_object_write(key, custom_metadata)
        data = as_python_bytes(data)
        path = self._path(key)
        # Writing ~1 MB belongs off the event loop.
        etag = await asyncio.to_thread(self._write, path, data, content_type, dict(custom_metadata))
        return ObjectInfo(key, len(data), etag, content_type, dict(custom_metadata))

    @staticmethod
    def _atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".tmp-{secrets.token_hex(8)}-{path.name}")
        try:
            # 0600 whatever the umask: objects are readable through signed URLs only.
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _write(
        self, path: Path, data: bytes, content_type: str, custom_metadata: dict[str, str]
    ) -> str:
        # R2's ETag is the MD5 of the content; here an opaque per-write version token does
        # the same job (it changes whenever the object does) without hashing a megabyte.
        etag = secrets.token_hex(16)
        meta = json.dumps(
            {"content_type": content_type, "custom_metadata": custom_metadata, "etag": etag}
        ).encode()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._atomic(path.with_name(path.name + ".meta.json"), meta)
        self._atomic(path, data)
        return etag

    def _head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            meta = json.loads(path.with_name(path.name + ".meta.json").read_bytes())
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return ObjectInfo(key, size, meta["etag"], meta["content_type"], meta["custom_metadata"])

    async def head(self, key: str) -> ObjectInfo | None:
        return await asyncio.to_thread(self._head, key)

    async def exists(self, key: str) -> bool:
        return await self.head(key) is not None

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> ObjectBody | None:
        info = await self.head(key)
        if info is None:
            return None
        try:
            fh = await asyncio.to_thread(open, self._path(key), "rb")
        except FileNotFoundError:
            return None
        start, end = byte_range or (0, info.size - 1)
        remaining = max(0, end - start + 1)

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal remaining
            try:
                if start:
                    await asyncio.to_thread(fh.seek, start)
                while remaining > 0:
                    chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    yield chunk
            finally:
                fh.close()

        return ObjectBody(info, chunks())

    async def read_image(self, key: str) -> ImageBytes | None:
        body = await self.get(key)
        return None if body is None else InProcessImage(await read_all(body))

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".meta.json").unlink(missing_ok=True)

        await asyncio.to_thread(remove)

    def _list(self, prefix: str) -> list[ObjectInfo]:
        if ".." in prefix.split("/"):
            raise StorageError(f"object prefix {prefix!r} is not allowed in the local store")
        # Only the directory the prefix names is walked (``variants/<sha256>/``: one image's).
        folder = self.root / prefix.rpartition("/")[0] if "/" in prefix else self.root
        if not folder.is_dir():
            return []
        found = []
        for path in folder.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.name.endswith(".meta.json") or path.name.startswith(".tmp-"):
                continue
            if key.startswith(prefix) and path.is_file():
                info = self._head(key)
                if info is not None:
                    found.append(info)
        return sorted(found, key=lambda info: info.key)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        return await asyncio.to_thread(self._list, prefix)
