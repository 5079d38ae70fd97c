"""The time-stamp authority on Workers: an RFC 3161 POST with the runtime's ``fetch`` behind
the core's :class:`~fluxgate.provenance.timestamp.Timestamper`.

The same contract as the local adapter (:mod:`fluxgate.local.timestamp_http`): redirects
not followed, cut off after ``timeout`` seconds (``AbortSignal.timeout``), a body over
:data:`~fluxgate.provenance.timestamp.MAX_RESPONSE_BYTES` given up (a declared
``Content-Length`` first, then a chunk at a time, so a TSA sending no length is held to the
same cap without its whole body read first), and every failure a
:class:`~fluxgate.provenance.timestamp.TimestampError` naming the host only (the URL may
carry an access key). The request goes over as a ``Uint8Array`` copy; the response comes
back as Python ``bytes``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from js import AbortSignal, fetch

from ...provenance.timestamp import (
    MAX_RESPONSE_BYTES,
    REPLY_CONTENT_TYPE,
    REPLY_CONTENT_TYPES,
    REQUEST_CONTENT_TYPE,
    TimestampError,
    tsa_host,
)
from ..ffi import js_bytes, js_object, js_text

__all__ = ["FetchTimestamper"]


class FetchTimestamper:
    """POSTs ``TimeStampReq`` bytes to one TSA and returns its ``TimeStampResp`` bytes."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        self._host = tsa_host(url)
        self._url = url
        self._timeout_ms = int(timeout * 1000)
        self._max_bytes = max_bytes

    async def stamp(self, request_der: bytes) -> bytes:
        options = js_object(
            {
                "method": "POST",
                "headers": {"content-type": REQUEST_CONTENT_TYPE, "accept": REPLY_CONTENT_TYPE},
                "body": js_bytes(request_der),
                "redirect": "manual",
                "signal": AbortSignal.timeout(self._timeout_ms),
            }
        )
        try:
            response = await fetch(self._url, options)
        except Exception as exc:  # a JsException: refused, reset, DNS, or the abort
            raise self._error(_failure(exc)) from None
        status = int(response.status)
        if status != 200:
            await _discard(response)
            raise self._error(f"answered HTTP {status}")
        content_type = (js_text(response.headers.get("content-type")) or "").partition(";")[0]
        if content_type.strip().lower() not in REPLY_CONTENT_TYPES:
            await _discard(response)
            raise self._error("answered with something other than a time-stamp reply")
        declared = js_text(response.headers.get("content-length"))
        if declared is not None and (not declared.isdigit() or int(declared) > self._max_bytes):
            await _discard(response)
            raise self._error("sent a response over the size limit")
        try:
            body = await _read_capped(response, self._max_bytes)
        except Exception as exc:
            raise self._error(_failure(exc)) from None
        if body is None:
            raise self._error("sent a response over the size limit")
        return body

    def _error(self, what: str) -> TimestampError:
        return TimestampError(f"the time-stamp authority at {self._host} {what}")


def _failure(exc: Exception) -> str:
    timed_out = "TimeoutError" in f"{type(exc).__name__} {exc}"
    return "did not answer in time" if timed_out else "could not be reached"


async def _discard(response: Any) -> None:
    """Cancel a body that will not be read, so the connection is not held for it."""
    if response.body is not None:
        with contextlib.suppress(Exception):  # a stream already closed: nothing to free
            await response.body.cancel()


async def _read_capped(response: Any, limit: int) -> bytes | None:
    """The body, read a chunk at a time; None (the stream cancelled) once past ``limit``."""
    if response.body is None:
        return b""
    reader = response.body.getReader()
    body = bytearray()
    while True:
        chunk = await reader.read()
        if chunk.done:
            return bytes(body)
        body += chunk.value.to_bytes()
        if len(body) > limit:
            await reader.cancel()
            return None
