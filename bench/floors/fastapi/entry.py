"""The Python floor of the Worker benchmark: a one-route FastAPI app behind the Workers
SDK's ASGI bridge (``workers.asgi``), the way Fluxgate's app is served, on the same Python
runtime and the same ``python_modules``.

What Fluxgate spends beyond this is its own work (authentication, the cache lookup,
signing, its envelope); what this spends beyond the JS floor is Pyodide's and FastAPI's.
"""

from typing import Any

from fastapi import FastAPI
from workers import WorkerEntrypoint, asgi

app = FastAPI()


@app.get("/floor")
async def floor() -> dict[str, bool]:
    return {"ok": True}


class Default(WorkerEntrypoint):
    async def fetch(self, request: Any) -> Any:
        return await asgi.fetch(app, request, self.env, self.ctx)
