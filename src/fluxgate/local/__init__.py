"""The local runtime: the same gateway under CPython, with embedded stores.

A peer of the Workers runtime rather than a mock of it: SQLite plays KV (TTL, metadata,
prefix listing and KV's limits), a directory plays R2 (atomic writes, HTTP and custom
metadata), and the model is the Workers AI REST API or an offline placeholder.
"""
