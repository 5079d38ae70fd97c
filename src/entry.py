"""Fluxgate's Worker entry point.

Signed downloads are answered before the FastAPI app is involved: they are the hottest
route, and R2's body stream goes to the client without passing through Python. Everything
else is the FastAPI app from :mod:`fluxgate.api.app`, served by the Workers ASGI adapter.

The app is imported here, at top level, on purpose: Python Workers run the top-level scope
once at deploy time and restore a memory snapshot of it on every cold start, so FastAPI and
pydantic cost nothing at request time.
"""

import fluxgate.edge.front.serve  # noqa: F401 - into the deploy-time memory snapshot
from fluxgate.edge.bindings.provenance_object import ProvenanceIndexObject  # one per deployment
from fluxgate.edge.front.worker import (
    BudgetLedgerObject,
    CatalogObject,
    CoalescerObject,
    Default,
    IdempotencyObject,
    JobObject,
)

__all__ = [
    "BudgetLedgerObject",
    "CatalogObject",
    "CoalescerObject",
    "Default",
    "IdempotencyObject",
    "JobObject",
    "ProvenanceIndexObject",
]
