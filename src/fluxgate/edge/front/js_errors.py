"""An :class:`~fluxgate.errors.ApiError` as a JS ``Response``: how the Worker's front sends
any error (the envelope, the fast path's front, the file route). Its own module, so that a
route refusing a request calls down into it, never back into the envelope around it."""

from __future__ import annotations

from typing import Any

from js import Response

from ...errors import ApiError, rendered
from ..ffi import js_object


def error_response(error: ApiError) -> Any:
    """``error`` as a JS ``Response``: its one rendering (:func:`~fluxgate.errors.rendered`)."""
    answer = rendered(error)
    return Response.new(
        answer.body, js_object({"status": answer.status, "headers": answer.headers})
    )
