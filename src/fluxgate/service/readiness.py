"""``/readyz``: can this deployment serve generations right now?

``/healthz`` says the process answers (liveness: probed constantly, touches nothing).
Readiness asks each dependency one cheap question, concurrently, each with a short
timeout: KV (a read of a key that does not exist), R2 (a ``head`` of one), and the model
(the catalog lists it: the AI binding's ``models()``, the REST API's model search, free and
without running anything). The model's answer is reused for :data:`MODEL_CHECK_SECONDS`:
``/readyz`` needs no credential, and locally the catalog lookup spends the Cloudflare API
token's quota, which a flood of probes must not exhaust; KV and R2 are the deployment's
own bindings and are asked every time, so an outage shows at once. Only the result (plain
data) is shared, never a probe in flight: on Workers one request must not await I/O
another request started. A failure is named by its kind only (``timeout``, an exception
class), never with a message that could carry a URL or a credential. Configuration is the
first check: a gateway that cannot be built is not ready, and says so without probing.

What is not a failure but a difference an operator must not miss is a warning: images
stored without C2PA Content Credentials (no signing identity on a Worker), or signed with
the local development chain, which validators do not trust. The same lines are printed
when the local server starts and logged when a Worker's isolate builds its gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from ..model.port import ImageModel
from ..store.ports import KVStore, ObjectStore

TIMEOUT_SECONDS = 3.0
MODEL_CHECK_SECONDS = 30.0
# Never written: a read of a missing key (or object) is the cheapest question to ask.
KV_PROBE_KEY = "readyz:probe"
R2_PROBE_KEY = "readyz/probe"


# How stored images are signed: by the operator's identity, the local development chain,
# not at all (no identity configured), or not at all by choice (``C2PA=false``).
CredentialsState = Literal["signed", "development", "unsigned", "off"]

CREDENTIALS_WARNINGS: dict[str, str] = {
    "unsigned": "c2pa_unsigned: no C2PA signing identity (the C2PA_SIGNING_KEY and "
    "C2PA_CERTIFICATE_CHAIN secrets): images are stored without Content Credentials, "
    "with the AI-disclosure XMP only.",
    "development": "c2pa_development_chain: Content Credentials are signed with the local "
    "development chain, which validators report as untrusted; set C2PA_SIGNING_KEY and "
    "C2PA_CERTIFICATE_CHAIN (locally FLUXGATE_C2PA_...) for a trusted identity.",
}


def credentials_state(enabled: bool, signer: object | None, development: bool) -> CredentialsState:
    """The state the settings (``C2PA``) and the runtime's signer give."""
    if not enabled:
        return "off"
    if signer is None:
        return "unsigned"
    return "development" if development else "signed"


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
        content_credentials: CredentialsState = "off",
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.content_credentials = content_credentials
        self._kv = kv
        self._objects = objects
        self._model = model
        self._timeout = timeout
        self._clock = clock
        self._model_checked: tuple[float, Check] | None = None

    async def checks(self) -> dict[str, Check]:
        kv, r2, model = await asyncio.gather(
            probe(lambda: self._kv.get(KV_PROBE_KEY), self._timeout),
            probe(lambda: self._objects.head(R2_PROBE_KEY), self._timeout),
            self._model_check(),
        )
        return {"config": Check(True), "kv": kv, "r2": r2, "model": model}

    def warnings(self) -> list[str]:
        """What differs from a fully configured deployment without making it unready."""
        warning = CREDENTIALS_WARNINGS.get(self.content_credentials)
        return [] if warning is None else [warning]

    async def _model_check(self) -> Check:
        now = self._clock()
        if self._model_checked is not None and now - self._model_checked[0] < MODEL_CHECK_SECONDS:
            return self._model_checked[1]
        check = await probe(self._model.ready, self._timeout)
        self._model_checked = (now, check)
        return check


def misconfigured() -> dict[str, Check]:
    """The checks of a deployment whose settings or secrets do not validate."""
    return {"config": Check(False, error="server_misconfigured")}
