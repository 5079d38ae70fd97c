"""R2 as the gateway's :class:`~fluxgate.store.ports.ObjectStore`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from js import Uint8Array

from ...imaging.image_bytes import ImageBytes, as_python_bytes
from ...store.ports import ObjectBody, ObjectInfo
from ..ffi import is_nullish, js_bytes, js_object, js_text, py_dict, unwrap
from .image_buffer import JsImage


def object_info(obj: Any) -> ObjectInfo:
    http = obj.httpMetadata
    content_type = None if is_nullish(http) else js_text(http.contentType)
    return ObjectInfo(
        key=str(obj.key),
        size=int(obj.size),
        etag=str(obj.etag),
        content_type=content_type or "application/octet-stream",
        custom_metadata=JsMetadata(obj.customMetadata),
    )


class JsMetadata(Mapping[str, str]):
    """An object's ``customMetadata``, converted from JS on its first read: most reads of
    an object (every download) never look at it."""

    def __init__(self, js: Any) -> None:
        self._js = js
        self._values: dict[str, str] | None = None

    def _converted(self) -> dict[str, str]:
        if self._values is None:
            self._values = {k: str(v) for k, v in py_dict(self._js).items()}
        return self._values

    def __getitem__(self, name: str) -> str:
        return self._converted()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._converted())

    def __len__(self) -> int:
        return len(self._converted())


async def body_chunks(body: Any) -> AsyncIterator[bytes]:
    """The bytes of a JS body (an R2 object, a ``Response``) read into Python: for what
    needs them there. A download passes the ``ReadableStream`` on instead (``stream``)."""
    buffer = await body.arrayBuffer()
    yield buffer.to_bytes()


class WorkersR2:
    def __init__(self, binding: Any) -> None:
        self.bucket = unwrap(binding)

    async def put(
        self,
        key: str,
        data: bytes | ImageBytes,
        *,
        content_type: str,
        custom_metadata: Mapping[str, str],
    ) -> ObjectInfo:
        options = {
            "httpMetadata": {"contentType": content_type},
            "customMetadata": dict(custom_metadata),
        }
        body = data.array if isinstance(data, JsImage) else js_bytes(as_python_bytes(data))
        result = await self.bucket.put(key, body, js_object(options))
        if is_nullish(result):  # only with onlyIf preconditions, which we do not set
            raise RuntimeError("R2 refused the write")
        return object_info(result)

    async def head(self, key: str) -> ObjectInfo | None:
        result = await self.bucket.head(key)
        return None if is_nullish(result) else object_info(result)

    async def exists(self, key: str) -> bool:
        return not is_nullish(await self.bucket.head(key))

    async def get(self, key: str, byte_range: tuple[int, int] | None = None) -> ObjectBody | None:
        if byte_range is None:
            result = await self.bucket.get(key)
        else:
            start, end = byte_range
            options = {"range": {"offset": start, "length": end - start + 1}}
            result = await self.bucket.get(key, js_object(options))
        if is_nullish(result):
            return None

        return ObjectBody(object_info(result), body_chunks(result), stream=lambda: result.body)

    async def read_image(self, key: str) -> JsImage | None:
        result = await self.bucket.get(key)
        if is_nullish(result):
            return None
        return JsImage(Uint8Array.new(await result.arrayBuffer()))

    async def delete(self, key: str) -> None:
        await self.bucket.delete(key)

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every page of R2's listing under ``prefix``, with each object's metadata (R2
        lists metadata only when asked to ``include`` it)."""
        found: list[ObjectInfo] = []
        cursor: str | None = None
        while True:
            options: dict[str, Any] = {
                "prefix": prefix,
                "include": ["httpMetadata", "customMetadata"],
            }
            if cursor is not None:
                options["cursor"] = cursor
            page = await self.bucket.list(js_object(options))
            found += [object_info(obj) for obj in page.objects]
            if not page.truncated:
                return found
            cursor = str(page.cursor)
