"""``GET /v1/files/...`` on Workers: R2's body stream goes straight into the Response.

Handled before FastAPI is involved: a download needs neither pydantic nor the app, and
the image bytes never enter Python. Full downloads go through the Workers Cache API, keyed
by the object (not the signature), so every signed URL of a popular image is served from
the edge after the first; the cached copy is public and immutable (the key is the content
hash) while the client gets ``private`` caching bounded by its URL. A cached copy is served
only while R2 still holds the object (one ``head``): a deleted image is gone from every
location's cache at once, which no purge (one location's) could promise. ``Range``
requests go to R2 directly (which reads the header itself); ``If-None-Match`` is answered
from the path alone.

A variant (``.../images/<sha256>.<ext>/<width>.<format>``) is served the same way from its
own key (``variants/<sha256>/<width>.<format>``), cached at the edge under that key. When
R2 does not have it yet, a :class:`~fluxgate.delivery.variants.VariantMaker` makes it
through the Images binding (the bytes stay in JS) and stores it, then it is served; a
Worker without the binding answers ``501 variants_unavailable``. Concurrent first
downloads of one variant share one transformation through the variant's Durable Object
(the ``COALESCER`` namespace, the generations' own: :func:`variant_coalescer`).
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from js import Response, caches

from ...delivery import files
from ...delivery.signing import SigningConfigError
from ...delivery.variants import VariantMaker, unavailable
from ...errors import INTERNAL_ERROR, ApiError, not_found
from ...model.coalesce import Coalescer, PollingCoalescer
from ..bindings.coalescer_object import DurableCoalescer
from ..bindings.images_binding import transformer_from_env
from ..bindings.r2 import WorkersR2
from ..ffi import is_nullish, js_object, js_text, unwrap, wait_until
from .config import env_flag, signer_from_env

log = logging.getLogger("fluxgate.edge.files")

# Without the COALESCER binding: first downloads share a transformation within the isolate.
_IN_ISOLATE = PollingCoalescer()


def error_response(error: ApiError) -> Any:
    headers = {"Content-Type": "application/json", **error.headers}
    return Response.new(error.to_json(), js_object({"status": error.status, "headers": headers}))


def _respond(body: Any, status: int, headers: dict[str, str]) -> Any:
    return Response.new(body, js_object({"status": status, "headers": headers}))


async def _drop_stale_entry(env: Any, query: dict[str, str]) -> None:
    entry = files.signed_cache_entry(query)
    kv = getattr(env, "KV", None)
    if entry is not None and kv is not None:
        try:
            await unwrap(kv).delete(entry)
        except Exception as exc:
            log.warning("could not drop stale cache entry: %s", type(exc).__name__)


async def serve_file(request: Any, env: Any, ctx: Any = None, bucket_name: str = "IMAGES") -> Any:
    """Answer a signed download; ``request`` is the JS ``Request``.

    No input may end this route with an exception: the Worker would answer a bare
    ``500 Worker threw exception``, not the JSON error every other route gives. A bug
    is logged and answered ``500 internal_error``, as the FastAPI app does.
    """
    try:
        return await _serve_file(request, env, ctx, bucket_name)
    except ApiError as exc:  # making a variant failed, or the gateway is misconfigured
        return error_response(exc)
    except Exception:
        log.exception("unhandled error in the file route")
        return error_response(INTERNAL_ERROR)


async def _serve_file(request: Any, env: Any, ctx: Any, bucket_name: str) -> Any:
    url = urlsplit(str(request.url))
    method = str(request.method).upper()
    query = dict(parse_qsl(url.query))
    now = time.time()
    try:
        signer = signer_from_env(env)
    except SigningConfigError:
        log.error("URL_SIGNING_KEYS is missing or invalid")
        misconfigured = ApiError(503, "server_misconfigured", "File access is not configured.")
        return error_response(misconfigured)
    try:
        target, expires = files.authorize(url.path, query, method, signer, now)
    except ApiError as exc:
        return error_response(exc)
    maker = _variant_maker(env, bucket_name) if target.variant is not None else None
    if target.variant is not None and maker is None:
        return error_response(unavailable())
    key = target.object_key
    headers = files.response_headers(target, expires, now)
    bucket = unwrap(getattr(env, bucket_name))
    # A 304 only while the original is stored (a HEAD): a deleted image is not revalidated.
    revalidating = files.matches_if_none_match(
        js_text(request.headers.get("if-none-match")), headers["ETag"]
    )
    if revalidating and not is_nullish(await bucket.head(target.original_key)):
        return _respond(None, 304, headers)

    range_header = js_text(request.headers.get("range"))
    cache_url = (
        files.edge_cache_url(f"{url.scheme}://{url.netloc}", key)
        if files.edge_cache_applies(url.hostname)
        else None
    )
    if method == "HEAD":
        obj = await bucket.head(key)
        if is_nullish(obj) and await _made(maker, target):
            obj = await bucket.head(key)
    elif range_header:
        return await _serve_range(bucket, target, maker, request, headers, env, query)
    else:
        if cache_url is not None:
            cached = await caches.default.match(cache_url)
            # A deleted (or expired) image must not outlive its object in any location's
            # cache, and a purge reaches only the location it runs in: a cached copy is
            # served only while R2 still has the object (a HEAD, no body).
            if not is_nullish(cached) and is_nullish(await bucket.head(key)):
                await caches.default.delete(cache_url)
                await _drop_stale_entry(env, query)
                return error_response(not_found("file"))
            if not is_nullish(cached):
                headers["Content-Type"] = js_text(cached.headers.get("content-type")) or ""
                headers["Content-Length"] = js_text(cached.headers.get("content-length")) or ""
                headers["X-Edge-Cache"] = "HIT"
                return _respond(cached.body, 200, {k: v for k, v in headers.items() if v})
        obj = await bucket.get(key)
        if is_nullish(obj) and await _made(maker, target):
            obj = await bucket.get(key)
    if is_nullish(obj):
        await _drop_stale_entry(env, query)
        return error_response(not_found("file"))
    http = obj.httpMetadata
    content_type = (None if is_nullish(http) else js_text(http.contentType)) or (
        "application/octet-stream"
    )
    headers["Content-Type"] = content_type
    headers["Content-Length"] = str(int(obj.size))
    if method == "HEAD":
        return _respond(None, 200, headers)
    if cache_url is None:
        return _respond(obj.body, 200, headers)
    for_client, for_cache = obj.body.tee()
    stored = _respond(
        for_cache,
        200,
        {
            "Content-Type": content_type,
            "Content-Length": str(int(obj.size)),
            "ETag": headers["ETag"],
            "Cache-Control": files.EDGE_CACHE_CONTROL,
        },
    )
    put = caches.default.put(cache_url, stored)
    if ctx is not None:
        wait_until(ctx, put)
    else:
        await put
    headers["X-Edge-Cache"] = "MISS"
    return _respond(for_client, 200, headers)


def _variant_maker(env: Any, bucket_name: str) -> VariantMaker | None:
    """A maker over this bucket and the Images binding (``None`` without the binding).

    Built from the bindings themselves, not the gateway: a variant download needs neither
    pydantic nor the app, like an original's. ``AI_DISCLOSURE`` is read as the settings
    read it; a value they would refuse leaves marking on here (the safe side), while the
    API answers 503 for it."""
    transformer = transformer_from_env(env)
    if transformer is None:
        return None
    bucket = WorkersR2(unwrap(getattr(env, bucket_name)))
    disclose = env_flag(env, "AI_DISCLOSURE", default=True)
    return VariantMaker(bucket, transformer, disclose=disclose, coalescer=variant_coalescer(env))


def variant_coalescer(env: Any) -> Coalescer:
    """One transformation per variant in flight, across isolates: the variant's Durable
    Object (``variant:<key>`` in the ``COALESCER`` namespace) elects the first download
    leader and holds the others until it reports. Only a download that finds no variant
    in R2 asks (once per variant, ever, barring failures), and a Durable Object request
    costs a fraction of a billed transformation; the leader's R2 write is what the
    waiters then serve. Without the binding, within the isolate."""
    namespace = getattr(env, "COALESCER", None)
    if namespace is None:
        return _IN_ISOLATE
    return DurableCoalescer(
        namespace,
        encode=lambda made: "made" if made else "gone",
        decode=lambda raw: raw == "made",
    )


async def _made(maker: VariantMaker | None, target: files.FileTarget) -> bool:
    """Make a variant R2 does not have yet; ``False`` for an original (nothing to make)
    or when the original is gone (then nothing is made)."""
    if maker is None or target.variant is None:
        return False
    return await maker.ensure(target.original_key, target.variant)


async def _serve_range(
    bucket: Any,
    target: files.FileTarget,
    maker: VariantMaker | None,
    request: Any,
    headers: dict[str, str],
    env: Any,
    query: dict[str, str],
) -> Any:
    key = target.object_key
    head = await bucket.head(key)
    if is_nullish(head) and await _made(maker, target):
        head = await bucket.head(key)
    if is_nullish(head):
        await _drop_stale_entry(env, query)
        return error_response(not_found("file"))
    size = int(head.size)
    try:
        wanted = files.parse_range(js_text(request.headers.get("range")), size)
    except ApiError as exc:
        return error_response(exc)
    http = head.httpMetadata
    headers["Content-Type"] = (None if is_nullish(http) else js_text(http.contentType)) or (
        "application/octet-stream"
    )
    if wanted is None:
        obj = await bucket.get(key)
        headers["Content-Length"] = str(size)
        return _respond(obj.body, 200, headers)
    options = {"range": {"offset": wanted.start, "length": wanted.length}}
    obj = await bucket.get(key, js_object(options))
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range(size)
    return _respond(obj.body, 206, headers)
