"""Prompt policy: one canonical form of a prompt, and the rules it must pass.

Normalisation (NFKC, control characters dropped, whitespace collapsed) happens before
the deny-list check and before hashing, so trivially different spellings of one prompt
share a cache entry. Deny rules are matched on the prompt's skeleton as well
(:mod:`fluxgate.policy.skeleton`): look-alike letters, invisible characters and combining marks
cannot slip past a rule.

Cost is bounded by the policy, not by the request: NFKC can expand a character up to 18
times (U+FDFA), so a prompt longer than ``RAW_LENGTH_FACTOR`` times the limit is refused
before it is normalised, and everything after that is linear in a text of at most
``18 * RAW_LENGTH_FACTOR * max_length`` characters. The prompt is normalised once per
check; deny terms are compiled once per policy into one regular expression.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import ApiError
from .skeleton import skeleton, spaced_controls, split_point, stream_safe

# Room for what normalisation removes (runs of whitespace, control and format characters,
# decomposed accents that NFKC composes) without normalising an unbounded text.
RAW_LENGTH_FACTOR = 4
# Normalised in pieces of about this many characters, to stop as soon as the prompt is
# known to be too long.
_PIECE = 1024


class PolicyViolation(ApiError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(400, "prompt_rejected", message, param="prompt", reason=reason)
        self.reason = reason


def _canonical(nfkc_text: str) -> str:
    return " ".join(spaced_controls(nfkc_text).split())


def _bounded_nfkc(prompt: str, max_length: int) -> str | None:
    """NFKC of ``prompt``, or None as soon as its canonical form must exceed ``max_length``.

    Pieces are cut where normalisation cannot join them (so their concatenation is the
    NFKC of the whole) and counted without whitespace (a lower bound of the canonical
    length): an expanding prompt is refused after normalising about ``max_length``
    characters of it, not all of it.
    """
    pieces: list[str] = []
    length = start = 0
    while start < len(prompt):
        end = split_point(prompt, start + _PIECE)
        piece = unicodedata.normalize("NFKC", prompt[start:end])
        length += sum(map(len, spaced_controls(piece).split()))
        if length > max_length:
            return None
        pieces.append(piece)
        start = end
    return "".join(pieces)


def normalize_prompt(prompt: str) -> str:
    """The canonical form of a prompt. Unbounded: callers cap the length first, as
    :meth:`PromptPolicy.apply` does."""
    return _canonical(unicodedata.normalize("NFKC", stream_safe(prompt)))


def raw_length_limit(max_length: int) -> int:
    """The longest prompt, before normalisation, that is worth normalising."""
    return RAW_LENGTH_FACTOR * max_length


def audit_prompt(prompt: str, max_length: int) -> str:
    """What an audit line may record of a prompt: the raw text, cut to the raw limit, so
    that logging a refusal never normalises (or stores) an oversized prompt."""
    return prompt[: raw_length_limit(max_length)]


def _term_matcher(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One expression for all deny terms: whole words of the skeleton, longest first.

    A term whose skeleton is empty (only invisible characters) is left out: it would
    match everywhere.
    """
    skeletons = sorted({s for s in map(_term_skeleton, terms) if s}, key=len, reverse=True)
    if not skeletons:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, skeletons)) + r")(?!\w)")


def _term_skeleton(term: str) -> str:
    return skeleton(unicodedata.normalize("NFKC", term))


# What a policy remembers of the prompts that passed it: at most this many, each at most
# this long (a memory of a few MB at most, whatever the configured prompt length).
REMEMBERED_PROMPTS = 128
REMEMBERED_PROMPT_LENGTH = 2048


@dataclass(frozen=True)
class PromptPolicy:
    max_length: int = 2048
    deny_terms: tuple[str, ...] = ()
    deny_patterns: tuple[re.Pattern[str], ...] = ()
    _terms: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    # Prompts that passed, and their normalised text (see :meth:`apply`).
    _passed: dict[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_terms", _term_matcher(self.deny_terms))

    @classmethod
    def build(
        cls, max_length: int, deny_terms: Iterable[str], deny_patterns: Iterable[str]
    ) -> PromptPolicy:
        """Compile the rules once; an invalid regex raises ``re.error`` at start-up."""
        terms = tuple(t for t in deny_terms if t.strip())
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in deny_patterns)
        return cls(max_length, terms, patterns)

    def apply(self, prompt: str) -> str:
        """Return the normalised prompt, or raise :class:`PolicyViolation`.

        A short prompt that passed is remembered, by this policy (the result depends only
        on the rules and the prompt): a cache hit repeats a prompt, and normalising it was
        near a tenth of a hit's Python time on Workers. A refusal is not remembered; the
        oldest entry goes first past :data:`REMEMBERED_PROMPTS`."""
        remembered = self._passed.get(prompt)
        if remembered is not None:
            return remembered
        text = self.check(prompt)
        if len(prompt) <= REMEMBERED_PROMPT_LENGTH:
            if len(self._passed) >= REMEMBERED_PROMPTS:
                del self._passed[next(iter(self._passed))]
            self._passed[prompt] = text
        return text

    def check(self, prompt: str) -> str:
        """:meth:`apply`, computed."""
        limit = raw_length_limit(self.max_length)
        if len(prompt) > limit:
            raise PolicyViolation(
                "too_long",
                f"The prompt has {len(prompt)} characters before normalisation; the limit "
                f"is {limit} ({RAW_LENGTH_FACTOR} times the limit of {self.max_length} "
                "after normalisation).",
            )
        nfkc = _bounded_nfkc(stream_safe(prompt), self.max_length)
        text = "" if nfkc is None else _canonical(nfkc)
        if nfkc is None or len(text) > self.max_length:
            raise PolicyViolation(
                "too_long",
                f"The prompt has more than {self.max_length} characters after normalisation."
                if nfkc is None
                else f"The prompt has {len(text)} characters; the limit is {self.max_length}.",
            )
        if not text:
            raise PolicyViolation("empty", "The prompt is empty after normalisation.")
        if self._terms is None and not self.deny_patterns:
            return text
        shape = skeleton(nfkc)
        if self._terms is not None and self._terms.search(shape):
            raise PolicyViolation("denied_term", "The prompt contains a term that is not allowed.")
        for pattern in self.deny_patterns:
            if pattern.search(text) or pattern.search(shape):
                raise PolicyViolation(
                    "denied_pattern", "The prompt matches a pattern that is not allowed."
                )
        return text
