"""The Workers AI REST API, shaped like the AI binding.

Locally, with ``CLOUDFLARE_ACCOUNT_ID`` and ``CLOUDFLARE_API_TOKEN`` set, the gateway calls
the real flux-2-dev through ``POST /accounts/{id}/ai/run/{model}`` with the same multipart
body the binding receives. REST errors (``{"errors": [{"code", "message"}]}``) are raised
with the binding's ``"<code>: <message>"`` text, so one mapping serves both runtimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ..model.upstream import UpstreamError

API_BASE = "https://api.cloudflare.com/client/v4"


class RestAI:
    def __init__(
        self,
        account_id: str,
        api_token: str,
        *,
        base_url: str = API_BASE,
        timeout: float = 120.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._account_id = account_id
        # The token lives only in the client's default headers; it is never logged.
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {api_token}"},
            transport=transport,
        )

    async def run(self, model: str, inputs: Mapping[str, Any]) -> Any:
        """Multipart inputs (image models) go as the form; anything else as JSON."""
        url = f"/accounts/{self._account_id}/ai/run/{model}"
        multipart = inputs.get("multipart")
        try:
            if multipart is not None:
                response = await self._client.post(
                    url,
                    content=multipart["body"],
                    headers={"Content-Type": multipart["contentType"]},
                )
            else:
                response = await self._client.post(url, json=dict(inputs))
        except httpx.TimeoutException as exc:
            raise UpstreamError(3007, "the Workers AI REST API timed out") from exc
        except httpx.HTTPError as exc:
            raise UpstreamError(None, f"could not reach Workers AI: {type(exc).__name__}") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("success") and "result" in payload:
            return payload["result"]
        errors = payload.get("errors") if isinstance(payload, dict) else None
        if errors and isinstance(errors[0], dict):
            first = errors[0]
            code = first.get("code")
            raise UpstreamError(
                code if isinstance(code, int) else None, str(first.get("message", ""))
            )
        raise UpstreamError(
            response.status_code if response.status_code == 429 else None,
            f"HTTP {response.status_code} from Workers AI",
        )

    async def models(self, search: str) -> list[str]:
        """``GET /accounts/{id}/ai/models/search``: free, runs nothing (``/readyz``)."""
        response = await self._client.get(
            f"/accounts/{self._account_id}/ai/models/search", params={"search": search}
        )
        response.raise_for_status()
        result = response.json().get("result") or []
        return [str(model.get("name")) for model in result if isinstance(model, dict)]

    async def aclose(self) -> None:
        await self._client.aclose()
