"""Usage events on Workers: Workers Analytics Engine (``USAGE_EVENTS`` dataset binding).

``writeDataPoint`` is synchronous and fire-and-forget: it returns ``undefined`` at once,
the runtime ships the point after the response, and nothing tells the Worker whether the
service kept it. So a point is checked against the service's limits before it is written
(:func:`~fluxgate.listings.usage_points.check_data_point`), and whatever the binding throws is left
to :class:`~fluxgate.listings.usage_events.UsageRecorder`, which logs it and lets the request be.
Without the binding (not declared in ``wrangler.toml``) no events are written.
"""

from __future__ import annotations

from typing import Any

from ...listings.usage_events import UsageEvent
from ...listings.usage_points import check_data_point, data_point
from ..ffi import js_object, unwrap


class AnalyticsEngineEvents:
    """The gateway's :class:`~fluxgate.listings.usage_events.UsageEvents` on an Analytics Engine
    dataset: one data point per event (layout: :data:`~fluxgate.listings.usage_events.BLOBS`,
    :data:`~fluxgate.listings.usage_events.DOUBLES`, the key id as the index)."""

    def __init__(self, binding: Any) -> None:
        self._dataset = unwrap(binding)

    async def record(self, event: UsageEvent) -> None:
        point = data_point(event)
        check_data_point(point)
        self._dataset.writeDataPoint(js_object(point))


def usage_events_from_env(env: Any) -> AnalyticsEngineEvents | None:
    binding = getattr(env, "USAGE_EVENTS", None)
    return None if binding is None else AnalyticsEngineEvents(binding)
