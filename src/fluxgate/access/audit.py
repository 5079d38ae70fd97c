"""The audit log: one JSON line per refusal and per admin action.

Lines go to the ``fluxgate.audit`` logger (Workers Logs on Cloudflare, stderr locally).
They name the key id, never the key, and carry the prompt only as a SHA-256 unless the
operator opts in with ``AUDIT_LOG_PROMPTS``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from ..errors import ApiError
from .auth import Principal

audit_logger = logging.getLogger("fluxgate.audit")


def audit(
    action: str,
    *,
    key_id: str | None,
    subject: str | None = None,
    reason: str | None = None,
    status: int | None = None,
    prompt: str | None = None,
    include_prompt: bool = False,
    **details: Any,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "type": "audit",
        "action": action,
        "key_id": key_id,
    }
    if subject is not None:
        entry["subject"] = subject
    if reason is not None:
        entry["reason"] = reason
    if status is not None:
        entry["status"] = status
    if prompt is not None:
        if include_prompt:
            entry["prompt"] = prompt
        else:
            entry["prompt_sha256"] = hashlib.sha256(prompt.encode()).hexdigest()
    entry.update({k: v for k, v in details.items() if v is not None})
    audit_logger.info(json.dumps(entry, separators=(",", ":"), ensure_ascii=False))
    return entry


# Refusals worth an audit line: not typos of a path (404/405) and not our own faults (5xx).
_AUDITED = {400, 401, 403, 409, 413, 415, 429}
# Refusals audited whatever their status: a generated image output moderation refused.
_AUDITED_CODES = {"output_rejected"}


def audit_refusal(
    error: ApiError,
    *,
    principal: Principal | None,
    prompt: str | None,
    include_prompt: bool,
    path: str,
) -> None:
    """The audit line of a refused request (the app's error handlers, the generation handler)."""
    if error.status not in _AUDITED and error.code not in _AUDITED_CODES:
        return
    audit(
        "request.refused",
        key_id=principal.key.id if principal else None,
        subject=principal.subject if principal else None,
        reason=error.extra.get("reason") or error.code,
        status=error.status,
        prompt=prompt,
        include_prompt=include_prompt,
        path=path,
        categories=error.extra.get("categories"),
    )
