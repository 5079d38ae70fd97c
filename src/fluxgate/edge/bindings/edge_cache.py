"""The Workers Cache API (``caches.default``) as the downloads' edge cache.

Copies are keyed by the object (:func:`~fluxgate.delivery.files.edge_cache_url`) and hold
only what the client's response needs: a copy is a JS ``Response`` whose body goes to the
client as a stream, and a new copy is the object's R2 stream teed, one half for the client,
the other written to the cache after the response (``waitUntil``, by the file route).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Mapping
from typing import Any

from js import Response, caches

from ...delivery import files
from ...store.ports import ObjectBody, ObjectInfo
from ..ffi import is_nullish, js_object, js_text


async def stream_chunks(stream: Any) -> AsyncIterator[bytes]:
    """A JS ``ReadableStream`` read into Python, when iterated (a download never does)."""
    buffer = await Response.new(stream).arrayBuffer()
    yield buffer.to_bytes()


class WorkersEdgeCache:
    def applies(self, hostname: str | None) -> bool:
        """Not on ``*.workers.dev``, where the Cache API does nothing (a lookup would
        always miss and a write be discarded)."""
        return files.edge_cache_applies(hostname)

    async def match(self, url: str) -> ObjectBody | None:
        """The cached copy; one without its content headers is treated as none (it is
        replaced by the next download)."""
        cached = await caches.default.match(url)
        if is_nullish(cached):
            return None
        content_type = js_text(cached.headers.get("content-type"))
        length = js_text(cached.headers.get("content-length"))
        if not content_type or not length or not length.isdigit():
            return None
        info = ObjectInfo(key=url, size=int(length), etag="", content_type=content_type)
        body = cached.body
        return ObjectBody(info, stream_chunks(body), stream=lambda: body)

    async def delete(self, url: str) -> None:
        await caches.default.delete(url)

    def keep(
        self, url: str, body: ObjectBody, headers: Mapping[str, str]
    ) -> tuple[ObjectBody, Awaitable[Any]]:
        if body.stream is None:
            raise TypeError("the edge cache keeps a JS stream; this body has none")
        native: Any = body.stream()
        for_client, for_cache = native.tee()
        stored = Response.new(for_cache, js_object({"status": 200, "headers": dict(headers)}))
        write = caches.default.put(url, stored)
        kept = ObjectBody(body.info, stream_chunks(for_client), stream=lambda: for_client)
        return kept, write
