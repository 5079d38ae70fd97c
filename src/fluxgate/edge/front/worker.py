"""The Worker's entry class and Durable Objects.

``src/entry.py`` re-exports these and imports the FastAPI app at top level, so that it is
part of the memory snapshot workerd takes at deploy time: on Python Workers the top-level
scope runs once per deploy, not per cold start. The Durable Objects' own modules
(``edge/bindings``) stay free of pydantic and FastAPI.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from js import console
from workers import WorkerEntrypoint

from ...delivery.files import FILES_PREFIX
from ..bindings.answers_object import IdempotencyObject
from ..bindings.catalog_object import CatalogObject
from ..bindings.coalescer_object import CoalescerObject
from ..bindings.job_objects import JobObject
from ..bindings.ledger_object import BudgetLedgerObject
from ..ffi import raw_env
from .file_route import serve_file
from .gateway_env import gateway_from_env
from .js_envelope import enveloped
from .serve import handle

__all__ = [
    "BudgetLedgerObject",
    "CatalogObject",
    "CoalescerObject",
    "Default",
    "IdempotencyObject",
    "JobObject",
]


# Written to the console by each isolate on its first event. An isolate that dies (a fatal
# error, such as the stack overflow a deeply nested body once caused) is replaced by a new
# one, which writes it again: the tests count these lines to prove no request crashed one.
ISOLATE_STARTED = "fluxgate: isolate started"


@functools.cache
def isolate_started() -> None:
    """Write :data:`ISOLATE_STARTED`, once per isolate. On the first event, never at import:
    the top level runs once at deploy into the memory snapshot that every isolate starts
    from, so a line written there would be written by none of them."""
    console.log(ISOLATE_STARTED)


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        isolate_started()
        raw, env = request.js_object, raw_env(self.env)
        path = urlsplit(str(raw.url)).path
        if path.startswith(FILES_PREFIX):
            return await enveloped(raw, env, path, serve_file, raw, env, self.ctx)
        return await enveloped(raw, env, path, handle, request, self.env, self.ctx)

    async def queue(self, batch: Any, _env: Any = None, _ctx: Any = None) -> None:
        """The consumer of ``fluxgate-jobs``: async generations and webhook deliveries.

        workerd calls ``queue`` strictly with every argument of the module-worker form,
        ``(batch, env, ctx)``; for a class entrypoint the last two are ``undefined`` (they
        are ``self.env`` and ``self.ctx``), but they are passed all the same.
        """
        isolate_started()
        from ..bindings.job_objects import consume

        runner = gateway_from_env(self.env).job_runner
        if runner is None:  # the batch is retried, then dead-lettered: nothing is lost
            raise RuntimeError("queue messages arrived, but JOBS or JOB_QUEUE is not bound")
        await consume(batch, runner)
