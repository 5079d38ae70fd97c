"""Fluxgate's Worker entry point.

Signed downloads are answered before FastAPI is imported: they are the hottest route, and
on them R2's body stream goes to the client without passing through Python. Everything
else is the FastAPI app from :mod:`fluxgate.app`, served by the Workers ASGI adapter.
"""

from urllib.parse import urlsplit

from workers import WorkerEntrypoint

from fluxgate.edge.ledger import BudgetLedgerObject  # noqa: F401 - the Durable Object class
from fluxgate.files import FILES_PREFIX


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if urlsplit(request.url).path.startswith(FILES_PREFIX):
            from fluxgate.edge.files import serve_file

            return await serve_file(request.js_object, self.env)

        from fluxgate.edge.app import handle

        return await handle(request, self.env, self.ctx)
