"""The Worker's entry with a Python profiler around each request: the benchmark's Python
profile on workerd (``bench/workerd_pyprofile.py`` copies this file next to ``src/entry.py``
for the run, and removes it after; it is never part of a deploy).

``cProfile`` times with ``time.time``, which on workerd is Spectre-coarsened (it stands still
between I/O events) unless the ``precise_timers`` compatibility flag is on: the profiling
stack turns it on, and then it moves in 3 ms steps. One call's time is a multiple of 3 ms,
but the phase of the steps is random against the requests, so over hundreds of requests each
function's total is an unbiased estimate of its time: shares are what the report reads. A
coroutine's time while it awaits JS is not counted (it has returned to the event loop).

``GET /__bench/python-profile/start`` starts a profile, ``.../stop`` answers it as JSON (the
functions by own time). Every other request is the Worker's.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import time
from typing import Any
from urllib.parse import urlsplit

from js import Response

import entry
from entry import *  # noqa: F403 - the Durable Objects, as the Worker exports them

PREFIX = "/__bench/python-profile/"
TOP = 40
_profiles: list[cProfile.Profile] = []


def _stats(profile: cProfile.Profile) -> str:
    stats: Any = pstats.Stats(profile)
    rows = []
    for (path, line, name), (_, calls, own, total, _) in stats.stats.items():
        rows.append(
            {"function": f"{path}:{line}({name})", "calls": calls, "own": own, "cumulative": total}
        )
    rows.sort(key=lambda row: row["own"], reverse=True)
    return json.dumps({"total": sum(row["own"] for row in rows), "functions": rows[:TOP]})


class Default(entry.Default):
    async def fetch(self, request: Any) -> Any:
        path = urlsplit(str(request.js_object.url)).path
        if path == PREFIX + "start":
            _profiles[:] = [cProfile.Profile(time.time)]
            return Response.new("started")
        if path == PREFIX + "stop":
            profile = _profiles.pop()
            return Response.new(_stats(profile))
        if not _profiles:
            return await super().fetch(request)
        _profiles[0].enable()
        try:
            return await super().fetch(request)
        finally:
            _profiles[0].disable()
