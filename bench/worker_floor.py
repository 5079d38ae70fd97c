"""The floor of the Worker benchmark: a one-route FastAPI app behind the same Workers SDK
ASGI bridge (``workers.asgi``) as Fluxgate's app, loaded in the same Pyodide isolate.

Whatever the gateway spends beyond this is its own: authentication, the cache lookup,
signing, the JSON it answers.
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
