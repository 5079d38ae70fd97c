"""``/readyz``: can this deployment serve generations right now?

``/healthz`` says the process answers (liveness: probed constantly, touches nothing).
Readiness asks each dependency one cheap question, concurrently, each with a short
timeout: KV (a read of a key that does not exist), R2 (a ``head`` of one), and the model
(the catalog lists it: the AI binding's ``models()``, the REST API's model search, free and
without running anything). A failure is named by its kind only (``timeout``, an exception
class), never with a message that could carry a URL or a credential. Configuration is the
first check: a gateway that cannot be built is not ready, and says so without probing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from .image_model import ImageModel
from .storage import KVStore, ObjectStore

TIMEOUT_SECONDS = 3.0
# Never written: a read of a missing key (or object) is the cheapest question to ask.
KV_PROBE_KEY = "readyz:probe"
R2_PROBE_KEY = "readyz/probe"


@dataclass(frozen=True)
class Check:
    ok: bool
    ms: float | None = None
    error: str | None = None


async def probe(work: Callable[[], Awaitable[object]], seconds: float) -> Check:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(seconds):
            await work()
    except TimeoutError:
        return Check(False, error="timeout")
    except Exception as exc:
        return Check(False, error=type(exc).__name__)
    return Check(True, ms=round((time.perf_counter() - started) * 1000, 1))


class Readiness:
    """The dependencies one gateway was wired with, probed on demand."""

    def __init__(
        self,
        *,
        kv: KVStore,
        objects: ObjectStore,
        model: ImageModel,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._kv = kv
        self._objects = objects
        self._model = model
        self._timeout = timeout

    async def checks(self) -> dict[str, Check]:
        kv, r2, model = await asyncio.gather(
            probe(lambda: self._kv.get(KV_PROBE_KEY), self._timeout),
            probe(lambda: self._objects.head(R2_PROBE_KEY), self._timeout),
            probe(self._model.ready, self._timeout),
        )
        return {"config": Check(True), "kv": kv, "r2": r2, "model": model}


def misconfigured() -> dict[str, Check]:
    """The checks of a deployment whose settings or secrets do not validate."""
    return {"config": Check(False, error="server_misconfigured")}
