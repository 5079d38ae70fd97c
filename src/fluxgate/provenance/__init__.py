"""Provenance: C2PA Content Credentials signed into every stored image, and the index that
answers "did this deployment generate this image?" (content hash, signed manifest,
perceptual fingerprint). Runtime-agnostic: no ``js``, no HTTP layer."""
