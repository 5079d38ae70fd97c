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
