"""A usage event as an Analytics Engine data point, and the service's limits on one.

The layout is :data:`~fluxgate.listings.usage_events.BLOBS` and
:data:`~fluxgate.listings.usage_events.DOUBLES` in order, the key id as the index. Apart from
the events themselves so that the Workers adapter reads it without calling back into the
module that handed it the event; pure Python, so that it is tested under CPython.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from .usage_events import BLOBS, DOUBLES, UsageEvent

# Analytics Engine's limits on one data point (what workerd enforces): 20 blobs of 16,000
# bytes in all, 20 doubles, one index of at most 96 bytes.
MAX_BLOB_BYTES = 16_000
MAX_INDEX_BYTES = 96


def _reader(names: tuple[str, ...]) -> Callable[[UsageEvent], tuple[Any, ...]]:
    """The fields ``names`` of an event, in order, read in one call (every request served
    writes a point); a tuple for one name too, as ``attrgetter`` gives only for several."""
    get = operator.attrgetter(*names)
    return get if len(names) > 1 else lambda event: (get(event),)


_blobs, _doubles = _reader(BLOBS), _reader(DOUBLES)


def data_point(event: UsageEvent) -> dict[str, list[Any]]:
    """The event's data point: :data:`BLOBS` and :data:`DOUBLES` in order, the key id as the
    index (the sampling key: a key's events are sampled together)."""
    return {
        "blobs": ["" if value is None else str(value) for value in _blobs(event)],
        "doubles": [float(value) for value in _doubles(event)],
        "indexes": [event.key_id],
    }


def check_data_point(point: dict[str, list[Any]]) -> None:
    """Refuse what Analytics Engine would refuse (so the adapter never writes a point that
    the service drops)."""
    blob_bytes = len("".join(map(str, point["blobs"])).encode())
    if len(point["blobs"]) > 20 or blob_bytes > MAX_BLOB_BYTES:
        raise ValueError(f"blobs over Analytics Engine's limits ({blob_bytes} bytes)")
    if len(point["doubles"]) > 20:
        raise ValueError("more than 20 doubles")
    if len(point["indexes"]) != 1 or len(point["indexes"][0].encode()) > MAX_INDEX_BYTES:
        raise ValueError(f"the index must be one value of at most {MAX_INDEX_BYTES} bytes")
