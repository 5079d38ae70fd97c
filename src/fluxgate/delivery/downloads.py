"""Signed downloads, ``GET|HEAD /v1/files/images/<sha256>.<ext>[/<width>.<format>]``: one
sequence for both runtimes, over ports.

:func:`download` checks the signature (:mod:`fluxgate.delivery.files` has the rules), then
answers from the object store, making a missing variant on the way
(:class:`~fluxgate.delivery.variants.VariantMaker`). It returns a :class:`FileAnswer` in no
runtime's types: a status, headers and the object's body as the store gave it, which the
runtime turns into its response without copying (the Worker passes R2's stream straight into
its ``Response``, the local server streams the file's chunks). Errors are raised as
:class:`~fluxgate.errors.ApiError`, rendered by the runtime like any other.

The edge cache is a port too (:class:`EdgeCache`): on Workers the Cache API, keyed by the
object (not the signature), so every signed URL of a popular image is served from the edge
after the first; nothing locally (:data:`NO_EDGE_CACHE`). A cached copy is served only while
the store still holds the object (one ``head``): a deleted image is gone from every
location's cache at once, which no purge (one location's) could promise. ``Range`` and
``HEAD`` requests go to the store directly; ``If-None-Match`` is answered from the path
alone, with a 304 only while the original is stored (a deleted image is not revalidated; a
variant can always be made again).

The ports (:class:`FilePorts`) are wired once per process or isolate, in the gateway: a
download constructs nothing but its answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import not_found
from ..store.ports import ObjectBody, ObjectInfo, ObjectStore
from . import files
from .signing import UrlSigner
from .variants import VariantMaker, unavailable


@dataclass(frozen=True)
class FileRequest:
    """What a download reads of its request. ``path``: as signed (the path as sent,
    parsed as the URL Standard parses it: :func:`~fluxgate.delivery.files.url_path`);
    ``origin`` and ``hostname``: where it was sent (the edge cache's key space)."""

    method: str
    path: str
    query: Mapping[str, str]
    if_none_match: str | None
    range: str | None
    origin: str
    hostname: str | None


@dataclass(frozen=True)
class FileAnswer:
    """A download's answer. ``body``: the object as the store (or the edge cache) gave it,
    ``None`` for a HEAD or a 304. ``after``: work to finish once the response is out (the
    edge cache's write), for the runtime to schedule."""

    status: int
    headers: dict[str, str]
    body: ObjectBody | None = None
    after: Awaitable[Any] | None = None


class EdgeCache(Protocol):
    """A cache in front of the store, shared by every signed URL of an object."""

    def applies(self, hostname: str | None) -> bool:
        """Whether caching does anything for requests to ``hostname``."""
        ...

    async def match(self, url: str) -> ObjectBody | None: ...

    async def delete(self, url: str) -> None: ...

    def keep(
        self, url: str, body: ObjectBody, headers: Mapping[str, str]
    ) -> tuple[ObjectBody, Awaitable[Any]]:
        """Store a copy of ``body`` with ``headers``: the body left for the client, and
        the pending write."""
        ...


class _NoEdgeCache:
    """No cache in front of the store (the local runtime)."""

    def applies(self, hostname: str | None) -> bool:
        return False

    async def match(self, url: str) -> ObjectBody | None:
        return None

    async def delete(self, url: str) -> None:
        return None

    def keep(
        self, url: str, body: ObjectBody, headers: Mapping[str, str]
    ) -> tuple[ObjectBody, Awaitable[Any]]:
        raise NotImplementedError("no edge cache applies, so nothing is kept")


NO_EDGE_CACHE: EdgeCache = _NoEdgeCache()


@dataclass(frozen=True)
class FilePorts:
    """What downloads use: the URL signer, the object store, the variant maker (``None``:
    variants answer 501), the edge cache, how to drop the cache entry that produced a URL
    whose object is gone (the generator's ``forget``), and the clock."""

    signer: UrlSigner
    objects: ObjectStore
    variants: VariantMaker | None
    edge: EdgeCache
    forget: Callable[[str], Awaitable[None]]
    clock: Callable[[], float]


async def download(request: FileRequest, ports: FilePorts) -> FileAnswer:
    """Answer a signed download; raises :class:`~fluxgate.errors.ApiError` for a refusal
    (405, 403, 404, 416, 501, 502, 503)."""
    now = ports.clock()
    target, expires = files.authorize(
        request.path, request.query, request.method, ports.signer, now
    )
    if target.variant is not None and ports.variants is None:
        raise unavailable()
    headers = files.response_headers(target, expires, now)
    revalidating = files.matches_if_none_match(request.if_none_match, headers["ETag"])
    if revalidating and await ports.objects.exists(target.original_key):
        return FileAnswer(304, headers)
    if request.method.upper() == "GET" and not request.range:  # the common case
        return await _whole(request, ports, target, headers)
    info = await _head(request, ports, target)
    headers["Content-Type"] = info.content_type
    if request.method.upper() == "HEAD":
        headers["Content-Length"] = str(info.size)
        return FileAnswer(200, headers)
    wanted = files.parse_range(request.range, info.size)
    byte_range = None if wanted is None else (wanted.start, wanted.end)
    body = await ports.objects.get(target.object_key, byte_range)
    if body is None:  # deleted between the two calls
        raise not_found("file")
    if wanted is None:
        headers["Content-Length"] = str(info.size)
        return FileAnswer(200, headers, body)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(info.size)
    return FileAnswer(206, headers, body)


async def _whole(
    request: FileRequest, ports: FilePorts, target: files.FileTarget, headers: dict[str, str]
) -> FileAnswer:
    """A GET of the whole file: from the edge cache while the store holds the object,
    else from the store (one call), kept in the edge cache on the way out."""
    key = target.object_key
    cache_url = None
    if ports.edge.applies(request.hostname):
        cache_url = files.edge_cache_url(request.origin, key)
        cached = await ports.edge.match(cache_url)
        if cached is not None:
            if not await ports.objects.exists(key):  # deleted: no copy outlives it
                await ports.edge.delete(cache_url)
                await _forget(request, ports)
                raise not_found("file")
            headers.update(_content(cached.info))
            headers["X-Edge-Cache"] = "HIT"
            return FileAnswer(200, headers, cached)
    body = await ports.objects.get(key)
    if body is None and await _made(ports, target):
        body = await ports.objects.get(key)
    if body is None:
        await _forget(request, ports)
        raise not_found("file")
    headers.update(_content(body.info))
    if cache_url is None:
        return FileAnswer(200, headers, body)
    stored = {**_content(body.info), "ETag": headers["ETag"]}
    stored["Cache-Control"] = files.EDGE_CACHE_CONTROL
    for_client, write = ports.edge.keep(cache_url, body, stored)
    headers["X-Edge-Cache"] = "MISS"
    return FileAnswer(200, headers, for_client, after=write)


async def _head(request: FileRequest, ports: FilePorts, target: files.FileTarget) -> ObjectInfo:
    """The stored object's description, its variant made first if missing; 404 (the URL's
    cache entry dropped) when there is none."""
    info = await ports.objects.head(target.object_key)
    if info is None and await _made(ports, target):
        info = await ports.objects.head(target.object_key)
    if info is None:
        await _forget(request, ports)
        raise not_found("file")
    return info


def _content(info: ObjectInfo) -> dict[str, str]:
    return {"Content-Type": info.content_type, "Content-Length": str(info.size)}


async def _made(ports: FilePorts, target: files.FileTarget) -> bool:
    """Make a missing variant from its original; ``False`` for an original (nothing to
    make) or when the original is gone (then nothing is made)."""
    if target.variant is None or ports.variants is None:
        return False
    return await ports.variants.ensure(target.original_key, target.variant)


async def _forget(request: FileRequest, ports: FilePorts) -> None:
    """The object behind a signed URL is gone: drop the cache entry that produced the URL,
    so that the next identical request generates anew instead of handing out a dead link."""
    entry = files.signed_cache_entry(request.query)
    if entry is not None:
        await ports.forget(entry)
