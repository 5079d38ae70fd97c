"""Storage as the gateway sees it: the KV and object-store ports, the keys they use (one
keyspace), generation records, cache keys, and stored ``Idempotency-Key`` answers."""
