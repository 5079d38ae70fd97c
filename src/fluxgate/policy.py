"""Prompt policy: one canonical form of a prompt, and the rules it must pass.

Normalisation (NFKC, control characters dropped, whitespace collapsed) happens before
the deny-list check and before hashing, so look-alike characters cannot slip past a rule
and trivially different spellings of one prompt share a cache entry.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ApiError


class PolicyViolation(ApiError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(400, "prompt_rejected", message, param="prompt", reason=reason)
        self.reason = reason


def normalize_prompt(prompt: str) -> str:
    text = unicodedata.normalize("NFKC", prompt)
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text)
    return " ".join(text.split())


@dataclass(frozen=True)
class PromptPolicy:
    max_length: int = 2048
    deny_terms: tuple[str, ...] = ()
    deny_patterns: tuple[re.Pattern[str], ...] = ()

    @classmethod
    def build(
        cls, max_length: int, deny_terms: Iterable[str], deny_patterns: Iterable[str]
    ) -> PromptPolicy:
        """Compile the rules once; an invalid regex raises ``re.error`` at start-up."""
        terms = tuple(normalize_prompt(t).casefold() for t in deny_terms if t.strip())
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in deny_patterns)
        return cls(max_length, terms, patterns)

    def apply(self, prompt: str) -> str:
        """Return the normalised prompt, or raise :class:`PolicyViolation`."""
        text = normalize_prompt(prompt)
        if not text:
            raise PolicyViolation("empty", "The prompt is empty after normalisation.")
        if len(text) > self.max_length:
            raise PolicyViolation(
                "too_long",
                f"The prompt has {len(text)} characters; the limit is {self.max_length}.",
            )
        folded = text.casefold()
        for term in self.deny_terms:
            if re.search(rf"(?<!\w){re.escape(term)}(?!\w)", folded):
                raise PolicyViolation(
                    "denied_term", "The prompt contains a term that is not allowed."
                )
        for pattern in self.deny_patterns:
            if pattern.search(text):
                raise PolicyViolation(
                    "denied_pattern", "The prompt matches a pattern that is not allowed."
                )
        return text
