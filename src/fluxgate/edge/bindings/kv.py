"""Workers KV as the gateway's :class:`~fluxgate.store.ports.KVStore`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...store.ports import KVEntry, KVPage
from ..ffi import is_nullish, js_object, js_text, py_dict, unwrap


class WorkersKV:
    def __init__(self, binding: Any) -> None:
        self._kv = unwrap(binding)
        self._read_options: dict[int, Any] = {}  # per cacheTtl, made once (hot path)

    async def get(self, key: str, *, cache_ttl: int | None = None) -> str | None:
        if cache_ttl is None:
            return js_text(await self._kv.get(key))  # text by default; null when absent
        options = self._read_options.get(cache_ttl)
        if options is None:
            options = self._read_options[cache_ttl] = js_object(
                {"type": "text", "cacheTtl": cache_ttl}
            )
        return js_text(await self._kv.get(key, options))

    async def put(
        self,
        key: str,
        value: str,
        *,
        ttl: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        options: dict[str, Any] = {}
        if ttl is not None:
            options["expirationTtl"] = ttl
        if metadata is not None:
            options["metadata"] = dict(metadata)
        await self._kv.put(key, value, js_object(options))

    async def delete(self, key: str) -> None:
        await self._kv.delete(key)

    async def list(self, prefix: str, *, limit: int = 1000, cursor: str | None = None) -> KVPage:
        options: dict[str, Any] = {"prefix": prefix, "limit": limit}
        if cursor:
            options["cursor"] = cursor
        result = await self._kv.list(js_object(options))
        keys = [KVEntry(str(item.name), py_dict(item.metadata) or None) for item in result.keys]
        complete = bool(result.list_complete)
        cursor_out = None if complete or is_nullish(result.cursor) else str(result.cursor)
        return KVPage(keys, cursor_out, complete)
