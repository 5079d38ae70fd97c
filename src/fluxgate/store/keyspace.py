"""Every key the gateway writes to KV, and to R2, spelled in one place.

A KV namespace holds several kinds of entries side by side; each kind is a prefix, and
retention, listings of keys and deletions all depend on those prefixes being the same
everywhere. Modules build keys with these functions and never spell a prefix themselves.
"""

from __future__ import annotations

__all__ = [
    "API_KEY",
    "API_KEY_ID",
    "CACHE",
    "GENERATION",
    "IMAGE_ENTRIES",
    "POLICY",
    "api_key",
    "api_key_id",
    "cache_digest",
    "cache_entry",
    "generation",
    "image_object",
]

CACHE = "cache:"  # cache:<sha256 of the canonical request> -> the generation it was answered by
GENERATION = "gen:"  # gen:<generation id> -> the generation's record
API_KEY = "apikey:"  # apikey:<sha256 of the secret> -> the key's record
API_KEY_ID = "apikeyid:"  # apikeyid:<key id> -> the key's hashes, listing metadata
POLICY = "policy:current"  # the policy document in force

# The KV entries that describe an image: its record by id, and the cache entry.
IMAGE_ENTRIES = (GENERATION, CACHE)


def cache_entry(digest: str) -> str:
    return CACHE + digest


def cache_digest(entry: str) -> str:
    """The digest a cache entry's key carries (what signed URLs name as ``c``)."""
    return entry.removeprefix(CACHE)


def generation(generation_id: str) -> str:
    return GENERATION + generation_id


def api_key(secret_digest: str) -> str:
    return API_KEY + secret_digest


def api_key_id(key_id: str) -> str:
    return API_KEY_ID + key_id


def image_object(digest: str, extension: str) -> str:
    """The R2 object of an image: named by its content, so identical bytes are one object."""
    return f"images/{digest}.{extension}"
