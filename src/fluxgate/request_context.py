"""One request's identity and the facts its access-log line reports.

Every response carries an ``X-Request-Id``, and so does every error body, so that a
client can quote one id in a support ticket and the operator can find the request's one
access-log line (and its audit lines). A client may send its own id (a sane one is kept,
so a mobile app's trace id follows the request); otherwise one is generated.

The facts are gathered on the way down by the layers that know them (the caller's key id,
the cache status and cost of a generation, the model's time) into the request's
:class:`Exchange`, held in a context variable: every runtime runs a request in its own
asyncio task, and a task inherits the context of whatever starts it. Nothing here is a
secret: the key *id*, never the key; the route *template*, never the URL (a signed URL's
query is a bearer capability). Pydantic-free and ``js``-free: both runtimes' outermost
layers import it, the Worker's before FastAPI is loaded.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass

REQUEST_ID_HEADER = "X-Request-Id"

# What a client-sent id may look like to be kept: the characters of common trace ids
# (UUIDs, W3C trace ids, ULIDs, "app-1234/5"), at most 128 of them. Anything else (spaces,
# quotes, control characters, non-ASCII) is replaced, so an id is safe in a header, a JSON
# log line and a support ticket alike.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+=/-]{0,127}")

_MAX_PATH_IN_LOG = 200


class _Ids:
    """Generated ids: ``req_`` + a random prefix drawn once per process (on Workers, once
    per isolate: lazily, after the deploy-time snapshot, so isolates never share one) + a
    counter, 24 hex in all. Unique without a system call per request; an id is not a
    secret, so telling the order of one isolate's requests apart is harmless."""

    def __init__(self) -> None:
        self._prefix: str | None = None
        self._count = itertools.count()

    def next(self) -> str:
        if self._prefix is None:
            self._prefix = secrets.token_hex(8)
        return f"req_{self._prefix}{next(self._count) % 2**32:08x}"


_ids = _Ids()


def request_id(offered: str | None) -> str:
    """The id of a request: the client's when it is sane, else a new one (``req_`` + 24
    hex)."""
    if offered is not None and _SANE_ID.fullmatch(offered):
        return offered
    return _ids.next()


_second: list[tuple[int, str]] = [(-1, "")]


def _utc_second(now: float) -> str:
    """``now`` as the log's ISO 8601 second, formatted once a second (it is on every
    request's path)."""
    second = int(now)
    cached = _second[0]
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
        _second[0] = cached
    return cached[1]


@dataclass
class Exchange:
    """One request and what its access-log line says. ``route`` is the matched route's
    template (``/v1/images/{generation_id}``) once routing has happened; ``path`` (never
    the query) stands in for it when nothing matched."""

    request_id: str
    method: str
    path: str
    started: float
    route: str | None = None
    key_id: str | None = None
    cache: str | None = None
    cost_usd: float | None = None
    model_ms: float | None = None

    def access_line(self, status: int) -> str:
        """The request's one JSON access-log line."""
        entry: dict[str, object] = {
            "time": _utc_second(time.time()),
            "type": "access",
            "request_id": self.request_id,
            "method": self.method,
            "route": self.route or self.path[:_MAX_PATH_IN_LOG],
            "status": status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 1),
        }
        optional = {
            "key_id": self.key_id,
            "cache": self.cache,
            "cost_usd": self.cost_usd,
            "model_ms": None if self.model_ms is None else round(self.model_ms, 1),
        }
        entry.update({k: v for k, v in optional.items() if v is not None})
        return json.dumps(entry, separators=(",", ":"), ensure_ascii=True)


_current: ContextVar[Exchange | None] = ContextVar("fluxgate_exchange", default=None)


def begin(
    method: str, path: str, offered_id: str | None
) -> tuple[Exchange, Token[Exchange | None]]:
    """Start a request's exchange in the current context; ``end`` it with the token."""
    exchange = Exchange(request_id(offered_id), method, path, time.perf_counter())
    return exchange, _current.set(exchange)


def end(token: Token[Exchange | None]) -> None:
    _current.reset(token)


def current_request_id() -> str | None:
    """The id of the request being served here, if any (error bodies carry it)."""
    exchange = _current.get()
    return None if exchange is None else exchange.request_id


def note_route(template: str) -> None:
    exchange = _current.get()
    if exchange is not None:
        exchange.route = template


def note_caller(key_id: str) -> None:
    exchange = _current.get()
    if exchange is not None:
        exchange.key_id = key_id


def note_generation(cache: str, cost_usd: float, model_ms: float | None) -> None:
    """A synchronous generation's cache status, what it charged, and the model's time."""
    exchange = _current.get()
    if exchange is not None:
        exchange.cache = cache
        exchange.cost_usd = cost_usd
        exchange.model_ms = model_ms
