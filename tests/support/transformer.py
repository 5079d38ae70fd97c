"""The image transformer that makes variants in process, as a test counts, fails and holds it.

Only the local runtime has one to watch (Pillow, :class:`CountingTransformer` around it):
Miniflare's Images binding neither counts nor fails, so a test that asks for ``images``
runs locally (``runtimes("local")``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from fluxgate.delivery.variants import TransformError
from fluxgate.local.pillow_transform import PillowTransformer
from fluxgate.provenance.fingerprint import GrayGrid


class CountingTransformer:
    """An image transformer (Pillow locally) that counts the images it made, as the
    Images binding double of the Pyodide unit harness reports its ``output()`` calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.made = 0
        self._failures = 0
        self._started: asyncio.Event | None = None
        self._gate: asyncio.Event | None = None

    def fail(self, count: int = 1) -> None:
        """The next ``count`` transforms fail, as the Images binding's errors do."""
        self._failures = count

    def hold(self) -> None:
        """Transforms wait, their original already read, until :meth:`release` (called in
        the test's event loop): a variant caught in the middle of its making."""
        self._started = asyncio.Event()
        self._gate = asyncio.Event()

    async def started(self) -> None:
        """Until a held transform has begun."""
        assert self._started is not None, "hold() first"
        await self._started.wait()

    def release(self) -> None:
        """Let the held transforms (and every later one) go on."""
        assert self._gate is not None, "hold() first"
        self._gate.set()

    async def transform(self, original: Any, width: int, fmt: str) -> Any:
        self.made += 1
        if self._started is not None and self._gate is not None:
            self._started.set()
            await self._gate.wait()
        if self._failures:
            self._failures -= 1
            raise TransformError("IMAGES_TRANSFORM_ERROR 9412: input is not an image (code 9412)")
        return await self.inner.transform(original, width, fmt)

    async def gray_grid(self, image: Any) -> GrayGrid:
        """The fingerprint's rendering, passed through: it is not a variant, so it is
        neither counted in ``made`` nor failed by :meth:`fail`."""
        grid: GrayGrid = await self.inner.gray_grid(image)
        return grid


@pytest.fixture
def images() -> CountingTransformer:
    """What makes variants in process: Pillow, counting the images it made (``made``)."""
    return CountingTransformer(PillowTransformer())
