"""Mapping Workers AI failures to client errors.

Workers AI raises ``InferenceUpstreamError`` whose message starts with a numeric code
("3040: Capacity temporarily exceeded"). The REST API returns the same codes in its
``errors`` array. Both runtimes funnel them through :func:`error_from_upstream`, so a client
sees the same status and ``code`` wherever the gateway runs.
"""

from __future__ import annotations

import re

from ..errors import ApiError

_CODE = re.compile(r"(?:^|[\s:(\[])(\d{3,5})\s*:\s*(.*)", re.DOTALL)

# code -> (status, stable code, retry-after seconds or None)
_MAPPING: dict[int, tuple[int, str, int | None]] = {
    5006: (400, "upstream_invalid_input", None),
    3003: (400, "upstream_invalid_input", None),
    3006: (413, "upstream_payload_too_large", None),
    3007: (504, "upstream_timeout", None),
    3036: (429, "upstream_rate_limited", 10),
    429: (429, "upstream_rate_limited", 10),
    3040: (503, "upstream_capacity", 30),
}


# Failures of the work itself, the model or the object store: the same for every caller of one
# cache key, so a coalesced waiter may receive its leader's. Policy refusals (the leader's
# rate limit, budget or moderation tier) are the leader's own and never shared.
WORK_FAILURES = frozenset(
    {*(code for _, code, _ in _MAPPING.values()), "upstream_error", "storage_unavailable"}
)
# Failures that a later attempt may not meet (an async job retries these, with backoff).
# By code, never by status: ``budget_exceeded`` and ``rate_limited`` are 429s too, and
# cannot pass before the day or the window ends.
TRANSIENT_FAILURES = frozenset(
    {
        "upstream_timeout",
        "upstream_rate_limited",
        "upstream_capacity",
        "upstream_error",
        "storage_unavailable",
        "moderation_unavailable",
        "output_moderation_unavailable",
    }
)


def is_work_failure(error: BaseException) -> bool:
    return isinstance(error, ApiError) and error.code in WORK_FAILURES


def is_transient(error: ApiError) -> bool:
    return error.code in TRANSIENT_FAILURES


class UpstreamError(Exception):
    """A model failure with the upstream's numeric code (``None`` when it had none)."""

    def __init__(self, code: int | None, message: str) -> None:
        super().__init__(f"{code}: {message}" if code is not None else message)
        self.code = code
        self.upstream_message = message


def parse_upstream_message(text: str) -> UpstreamError:
    """Extract ``<code>: <message>`` from an exception's text, wherever the prefix ends."""
    match = _CODE.search(text.strip())
    if match is None:
        return UpstreamError(None, text.strip())
    return UpstreamError(int(match.group(1)), match.group(2).strip())


def error_from_upstream(err: UpstreamError) -> ApiError:
    status, code, retry_after = _MAPPING.get(err.code or -1, (502, "upstream_error", None))
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    # The upstream's own text helps a developer fix a bad input; it never carries secrets.
    detail = err.upstream_message[:300] or "no detail"
    label = f"{err.code}" if err.code is not None else "unknown"
    return ApiError(
        status,
        code,
        f"The image model failed ({label}): {detail}",
        headers=headers,
        upstream_code=err.code,
    )
