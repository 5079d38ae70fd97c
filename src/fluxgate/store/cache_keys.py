"""Cache keys and request cache directives.

The key is a hash of the canonical request: normalised prompt, every parameter, the
SHA-256 of each reference image and the model name, plus the owning key id unless the cache
is global. A request without a seed hashes with ``seed: null``, so repeating it is a hit
(the first generation's random seed is returned with it).
"""

from __future__ import annotations

import enum
import hashlib
import json
from typing import Literal

from ..model.params import GenerationParams
from . import keyspace


class CacheMode(enum.Enum):
    NORMAL = "normal"  # read, and write on a miss
    REFRESH = "refresh"  # Cache-Control: no-cache: skip the read, write the new result
    NO_STORE = "no-store"  # neither read nor write

    @classmethod
    def from_header(cls, cache_control: str | None) -> CacheMode:
        directives = {d.strip().split("=")[0].lower() for d in (cache_control or "").split(",")}
        if "no-store" in directives:
            return cls.NO_STORE
        if "no-cache" in directives:
            return cls.REFRESH
        return cls.NORMAL


# Who shares a cache entry: the key that made it (``key``) or every key (``global``).
CacheScope = Literal["key", "global"]


def cache_key(params: GenerationParams, prompt: str, scope: str) -> str:
    """The KV key of ``params``' cached generation. ``prompt`` is the normalised prompt (the
    policy's), so spellings that normalise alike share an entry; ``scope`` is the owning
    key's id, or ``*`` for a global cache."""
    canonical = json.dumps(
        {
            "v": 1,
            "model": params.model,
            "prompt": prompt,
            **params.drawing(),
            "scope": scope,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return keyspace.cache_entry(hashlib.sha256(canonical.encode()).hexdigest())
