"""Issuers' key sets (JWKS), locally: a GET over httpx behind the core's
:class:`~fluxgate.access.id_tokens.JwksFetcher`.

As for webhooks (:class:`~fluxgate.local.jobs_sqlite.HttpxPoster`), the name is resolved
here and every address checked (a public name may resolve to a private address), then the
checked address is connected to, with the name in ``Host`` and in TLS. No redirects, no
proxies from the environment, a short timeout, and at most
:data:`~fluxgate.access.id_tokens.MAX_JWKS_BYTES` read: a failure is
:class:`~fluxgate.access.id_tokens.JwksUnavailable`, and the cache decides what to serve.
"""

from __future__ import annotations

import asyncio
import ipaddress
from urllib.parse import urlsplit

import httpx

from ..access.id_tokens import MAX_JWKS_BYTES, FetchedJwks, JwksUnavailable, cache_max_age
from ..jobs.webhooks import Address, address_refusal
from .jobs_sqlite import Resolver, resolve_host


class HttpxJwksFetcher:
    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        timeout: float = 5.0,
        resolve: Resolver = resolve_host,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._timeout = timeout
        self._resolve = resolve

    async def get(self, url: str) -> FetchedJwks:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = await self._address(host, port)
        pinned = httpx.URL(url).copy_with(host=str(address))
        named = parts.scheme == "https" and host != str(address)
        extensions = {"sni_hostname": host} if named else {}
        headers = {"host": parts.netloc, "accept": "application/json"}
        try:
            # One deadline for the whole fetch, as Workers' AbortSignal gives the Worker:
            # httpx's own timeout is per read, which a trickling server never trips.
            return await asyncio.wait_for(self._fetch(pinned, headers, extensions), self._timeout)
        except (httpx.TimeoutException, TimeoutError):
            raise JwksUnavailable("timeout") from None
        except httpx.HTTPError:
            raise JwksUnavailable("connection failed") from None

    async def _fetch(
        self, url: httpx.URL, headers: dict[str, str], extensions: dict[str, str]
    ) -> FetchedJwks:
        async with (
            httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, trust_env=False
            ) as client,
            client.stream("GET", url, headers=headers, extensions=extensions) as response,
        ):
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksUnavailable("the key set is over the size limit")
        max_age = cache_max_age(response.headers.get("cache-control"))
        return FetchedJwks(response.status_code, bytes(body), max_age)

    async def _address(self, host: str, port: int) -> Address:
        try:
            addresses: list[Address] = [ipaddress.ip_address(host)]
        except ValueError:
            try:
                found = await asyncio.wait_for(self._resolve(host, port), self._timeout)
                addresses = [ipaddress.ip_address(a.partition("%")[0]) for a in found]
            except TimeoutError:
                raise JwksUnavailable("timeout") from None
            except (OSError, ValueError):
                raise JwksUnavailable("the name did not resolve") from None
        refused = [a for a in addresses if address_refusal(a, allow_loopback=self._allow_loopback)]
        if not addresses or refused:
            raise JwksUnavailable("the name resolves to an address keys may not come from")
        return addresses[0]
