"""Model-based prompt moderation with Llama Guard 3 through the same AI binding.

``@cf/meta/llama-guard-3-8b`` takes chat ``messages`` and, asked for JSON, answers
``{"response": {"safe": bool, "categories": ["S1", ...]}}`` (or the plain text
``"unsafe\\nS1,S10"``). Both forms are parsed here. Whether a tier moderates, and what an
outage means (fail open or closed), is policy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ..model.port import AIRunner

log = logging.getLogger("fluxgate.moderation")

# A tier's prompt moderation: none, or a classifier whose failure lets the prompt through
# (``fail_open``) or refuses it (``fail_closed``).
ModerationMode = Literal["off", "fail_open", "fail_closed"]

MODERATION_MODEL = "@cf/meta/llama-guard-3-8b"

# MLCommons hazard taxonomy used by Llama Guard 3.
CATEGORIES = {
    "S1": "violent_crimes",
    "S2": "non_violent_crimes",
    "S3": "sex_related_crimes",
    "S4": "child_sexual_exploitation",
    "S5": "defamation",
    "S6": "specialized_advice",
    "S7": "privacy",
    "S8": "intellectual_property",
    "S9": "indiscriminate_weapons",
    "S10": "hate",
    "S11": "suicide_and_self_harm",
    "S12": "sexual_content",
    "S13": "elections",
    "S14": "code_interpreter_abuse",
}


class ModerationUnavailable(Exception):
    """The classifier could not answer (outage, bad output): policy decides what follows."""


@dataclass(frozen=True)
class Verdict:
    safe: bool
    categories: tuple[str, ...] = ()


class Moderator(Protocol):
    name: str

    async def classify(self, prompt: str) -> Verdict: ...


def parse_guard_output(result: Any) -> Verdict:
    response = result.get("response") if isinstance(result, Mapping) else None
    if isinstance(response, Mapping) and isinstance(response.get("safe"), bool):
        categories = response.get("categories") or []
        return Verdict(response["safe"], tuple(str(c) for c in categories))
    if isinstance(response, str) and response.strip():
        lines = response.strip().splitlines()
        verdict = lines[0].strip().lower()
        if verdict == "safe":
            return Verdict(True)
        if verdict == "unsafe":
            cats = [c.strip() for line in lines[1:] for c in line.split(",") if c.strip()]
            return Verdict(False, tuple(cats))
    raise ModerationUnavailable("unrecognised classifier output")


class GuardModerator:
    """Llama Guard through anything shaped like the AI binding (binding or REST API)."""

    def __init__(self, runner: AIRunner, model: str = MODERATION_MODEL) -> None:
        self._runner = runner
        self.name = model

    async def classify(self, prompt: str) -> Verdict:
        inputs = {
            "messages": [{"role": "user", "content": prompt}],
            "response_format": {"type": "json_object"},
            "temperature": 0,
            "max_tokens": 32,
        }
        try:
            result = await self._runner.run(self.name, inputs)
        except Exception as exc:
            log.warning("moderation call failed: %s", type(exc).__name__)
            raise ModerationUnavailable(str(exc)) from exc
        return parse_guard_output(result)


def category_names(categories: tuple[str, ...]) -> list[str]:
    return [CATEGORIES.get(c.upper(), c) for c in categories]
