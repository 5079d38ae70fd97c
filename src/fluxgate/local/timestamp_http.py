"""The time-stamp authority, locally: an RFC 3161 POST over httpx behind the core's
:class:`~fluxgate.provenance.timestamp.Timestamper`.

The TSA is the operator's choice (``C2PA_TIMESTAMP_URL``), not a caller's, so unlike the
key-set fetcher (:mod:`fluxgate.local.jwks_http`) there is no address screening. What is
kept: no redirects (a TSA answers the URL it is asked at), no proxies from the
environment, one deadline for the whole exchange, and at most
:data:`~fluxgate.provenance.timestamp.MAX_RESPONSE_BYTES` read. Every failure is a
:class:`~fluxgate.provenance.timestamp.TimestampError` naming the host only: a TSA URL may
carry an access key in its path or query, and the message is logged.
"""

from __future__ import annotations

import asyncio

import httpx

from ..provenance.timestamp import (
    MAX_RESPONSE_BYTES,
    REPLY_CONTENT_TYPE,
    REPLY_CONTENT_TYPES,
    REQUEST_CONTENT_TYPE,
    TimestampError,
    tsa_host,
)

__all__ = ["HttpxTimestamper"]


class HttpxTimestamper:
    """POSTs ``TimeStampReq`` bytes to one TSA and returns its ``TimeStampResp`` bytes."""

    def __init__(
        self, url: str, *, timeout: float = 10.0, max_bytes: int = MAX_RESPONSE_BYTES
    ) -> None:
        self._host = tsa_host(url)
        self._url = url
        self._timeout = timeout
        self._max_bytes = max_bytes

    async def stamp(self, request_der: bytes) -> bytes:
        try:
            # One deadline for the whole exchange: httpx's own timeout is per read, which a
            # trickling server never trips.
            return await asyncio.wait_for(self._post(request_der), self._timeout)
        except (httpx.TimeoutException, TimeoutError):
            raise self._error("did not answer in time") from None
        except httpx.HTTPError:
            raise self._error("could not be reached") from None

    async def _post(self, request_der: bytes) -> bytes:
        headers = {"content-type": REQUEST_CONTENT_TYPE, "accept": REPLY_CONTENT_TYPE}
        async with (
            httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("POST", self._url, content=request_der, headers=headers) as response,
        ):
            if response.status_code != 200:
                raise self._error(f"answered HTTP {response.status_code}")
            content_type = response.headers.get("content-type", "").partition(";")[0].strip()
            if content_type.lower() not in REPLY_CONTENT_TYPES:
                raise self._error("answered with something other than a time-stamp reply")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise self._error("sent a response over the size limit")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise self._error("sent a response over the size limit")
        return bytes(body)

    def _error(self, what: str) -> TimestampError:
        return TimestampError(f"the time-stamp authority at {self._host} {what}")
