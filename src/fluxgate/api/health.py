"""``GET /healthz``: liveness, the one answer both runtimes give.

Probed constantly (load balancers, uptime checks, every client's first call), so it touches
nothing: no storage, no model, only the gateway's configuration. The local server answers
it as a FastAPI route; the Worker answers it in front of its ASGI bridge
(``edge/front/serve.py``), where the bridge and FastAPI's routing would cost more CPU than
the answer itself. Both render :func:`health` through the same reply.
"""

from __future__ import annotations

from .. import __version__
from ..service.gateway import Gateway
from .reply import Reply, json_reply
from .schemas import Health

HEALTHZ = "/healthz"


def health(gw: Gateway) -> Reply:
    """The liveness answer: the default model, every model served, the version."""
    body = Health(model=gw.model_name, models=gw.model_names, version=__version__)
    return json_reply(200, body.model_dump(), {})
