"""A generated image's bytes, held where the runtime keeps them.

On Workers a generated image (about 1.2 MB, 1.6 MB as the model's base64) costs ~8 ms of
CPU just to become a Python ``str`` in Pyodide, then more to decode, hash and copy back
into a JS buffer for R2. So there it stays a JS buffer (``edge/bindings/image_buffer.py``) and the
core asks only for what it needs: its size, its first bytes (format and dimensions), its
SHA-256, and base64 when an answer must carry it. Under CPython it is plain ``bytes``.

The object store of each runtime takes its own kind as it is (``ObjectStore.put``), so the
bytes go from the model to storage without a copy through Python on either runtime.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import b64

# Enough of the head of any PNG, WebP or JPEG for its format and dimensions (a JPEG's
# start-of-frame comes after its APPn segments; EXIF is at most 64 KiB).
HEAD_BYTES = 64 * 1024 + 1024

# One part of a spliced image: literal bytes, or the range ``(start, end)`` of the original.
SplicePart = bytes | tuple[int, int]


class ImageBytes(Protocol):
    @property
    def size(self) -> int: ...

    def head(self, limit: int = HEAD_BYTES) -> bytes:
        """The first ``limit`` bytes (all of them when shorter), as Python bytes."""
        ...

    def read(self, start: int, end: int) -> bytes:
        """``[start, end)`` as Python bytes: a container's headers past the head (small
        ranges only)."""
        ...

    def splice(self, parts: Sequence[SplicePart]) -> ImageBytes:
        """A new image of the same kind: ``parts`` in order, each literal bytes or a range
        of this image, assembled where the bytes live (the disclosure's marked file)."""
        ...

    def image_url(self, mime: str) -> Any:
        """``{"url": "data:<mime>;base64,..."}``, what a vision model takes as an image: a
        Python dict here, a JS object built in JS on Workers (the base64 stays there)."""
        ...

    async def sha256(self) -> str:
        """The hex SHA-256 of the whole image."""
        ...

    async def base64(self) -> str:
        """Standard base64, for a ``b64_json`` body built in Python."""
        ...

    def python_bytes(self) -> bytes:
        """A copy in Python: for stores and tests that need one, never on a Worker's path."""
        ...


@dataclass(frozen=True)
class InProcessImage:
    """Image bytes that are Python ``bytes`` already (CPython, reference images)."""

    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def head(self, limit: int = HEAD_BYTES) -> bytes:
        return self.data[:limit]

    def read(self, start: int, end: int) -> bytes:
        return self.data[start:end]

    def splice(self, parts: Sequence[SplicePart]) -> InProcessImage:
        return InProcessImage(
            b"".join(
                self.data[part[0] : part[1]] if isinstance(part, tuple) else part for part in parts
            )
        )

    def image_url(self, mime: str) -> dict[str, str]:
        return {"url": f"data:{mime};base64,{b64.encode(self.data)}"}

    async def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    async def base64(self) -> str:
        return b64.encode(self.data)

    def python_bytes(self) -> bytes:
        return self.data


def as_python_bytes(data: bytes | ImageBytes) -> bytes:
    """What a store that keeps Python bytes writes."""
    return data if isinstance(data, bytes) else data.python_bytes()
