"""The local envelope's ``send``: the stamp every response leaves with.

:class:`StampedSend` adds the request id and the CORS headers to the status line's message
and notes the status for the access line. It is the ``send`` that the envelope
(``asgi_envelope.py``) hands down to every layer below it; in a module of its own so that
the layer that sends a response (the fast path, a route) calls into it, never back into the
envelope that is still waiting for that layer to return.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Send


class StampedSend:
    """``send`` with ``extra`` headers added to the response's start (``Vary`` added to,
    never replacing, what the response varies on). ``status``: the status sent, ``500``
    until one is; ``started``: whether the status line is out."""

    def __init__(self, send: Send, extra: dict[str, str]) -> None:
        self._send = send
        self._extra = extra
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = int(message["status"]), True
            out = MutableHeaders(scope=message)
            for name, value in self._extra.items():
                if name == "Vary":
                    out.add_vary_header(value)
                else:
                    out[name] = value
        await self._send(message)
