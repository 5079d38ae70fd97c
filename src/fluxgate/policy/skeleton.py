"""Skeletons: the form in which deny rules are matched, so look-alikes cannot slip past.

Two strings with one skeleton look alike: ``skeleton`` case-folds and decomposes (NFD) an
NFKC text, drops default-ignorable code points (ZWJ, soft hyphen, CGJ, variation
selectors...) and combining marks, maps confusables to their prototype as UTS #39 does
(Cyrillic and Greek o, U+043E and U+03BF, become ``o``; small capital E, U+1D07, becomes
``e``), turns other control and format characters into spaces and collapses whitespace.

ASCII letters and digits are their own skeleton (see scripts/generate_skeleton_data.py), so
English text matches exactly as before and a word stays a word: "gorgeous" is not "gore".
Non-Latin text keeps its letters where they have no Latin look-alike, and a rule written
in any script is skeletonised the same way as the prompt, so a Cyrillic rule still matches
Cyrillic text. The tables are generated (``skeleton_data``) so that both runtimes, whatever
their Unicode version, agree on the characters they drop and map.

Cost: one NFD, one ``str.translate`` and one split, linear in the text.
"""

from __future__ import annotations

import re
import unicodedata

from .skeleton_data import CONTROLS, DROPPED, JOINS_BACKWARD, NON_STARTERS, PROTOTYPES

# UAX #15's Stream-Safe Text Format: at most 30 non-starters in a row.
MAX_NON_STARTERS = 30


def _table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    for low, high in CONTROLS:
        table.update(dict.fromkeys(range(low, high + 1), " "))
    for low, high in DROPPED:
        table.update(dict.fromkeys(range(low, high + 1)))
    for prototype, sources in PROTOTYPES.items():
        table.update(dict.fromkeys(map(ord, sources), prototype))
    return table


def _char_class(*ranges: tuple[tuple[int, int], ...], negate: bool = False) -> str:
    spans = "".join(
        f"{re.escape(chr(lo))}-{re.escape(chr(hi))}" for group in ranges for lo, hi in group
    )
    return f"[{'^' if negate else ''}{spans}]"


_SKELETON = _table()
_CONTROL = re.compile(_char_class(CONTROLS))
_NON_STARTER = _char_class(NON_STARTERS)
_LONG_RUN = re.compile(f"({_NON_STARTER}{{{MAX_NON_STARTERS}}}){_NON_STARTER}+")
_SPLITTABLE = re.compile(_char_class(NON_STARTERS, JOINS_BACKWARD, negate=True))


def stream_safe(text: str) -> str:
    """``text`` with every run of non-starters (combining marks...) cut to 30.

    NFKC sorts such a run with an insertion sort: 64 Ki alternating marks take seconds.
    Longer runs than 30 are never text, only noise stacked on a letter ("zalgo").
    """
    return text if text.isascii() else _LONG_RUN.sub(r"\1", text)


def split_point(text: str, start: int) -> int:
    """The first index at or after ``start`` where ``text`` may be cut in two that
    normalise (NFC/NFKC) independently: before a starter that composes with nothing
    before it. ``len(text)`` when there is none."""
    found = _SPLITTABLE.search(text, start)
    return found.start() if found else len(text)


def spaced_controls(text: str) -> str:
    """``text`` with every control and format character (Cc, Cf) turned into a space."""
    return _CONTROL.sub(" ", text)


def skeleton(nfkc_text: str) -> str:
    """The skeleton of an NFKC-normalised text (see the module docstring)."""
    folded = unicodedata.normalize("NFD", nfkc_text.casefold())
    return " ".join(folded.translate(_SKELETON).split())
