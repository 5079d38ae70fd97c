"""The one way a request's JSON is parsed: UTF-8 text, depth-checked, strict.

Every JSON body (the generation handler, the admin and account routes) and
every JSON value inside a form field goes through :func:`parse_json` or
:func:`parse_json_text`; JSON this service stored itself is not request input and is read
with ``json.loads`` where it is stored.

Why text first: ``json.loads(bytes)`` guesses UTF-16 and UTF-32 from the first bytes, while
a depth check on raw bytes cannot know which bytes are brackets (``∀`` in UTF-16-LE is
``00 22``, a quote to a byte scanner), so a body in another encoding hid 20,000 levels of
nesting from the check and overflowed the WebAssembly stack, a fatal error for the whole
Worker isolate. JSON exchanged between systems is UTF-8 (RFC 8259 §8.1): the body is
decoded strictly as UTF-8 before anything else, and the depth is measured on, and the
parser given, that one text.
"""

from __future__ import annotations

import json
import math
import operator
import re
from itertools import accumulate, repeat
from typing import Any

from ..errors import ApiError

# Deeper than any body of this API (the policy document is 4 levels deep). The limit is
# checked before parsing: on Workers, json.loads of ~100,000 nested arrays overflows the
# WebAssembly stack, a fatal error for the whole isolate rather than a RecursionError.
MAX_JSON_DEPTH = 64
# RFC 8259 §8.1: senders must not add a byte order mark; parsers may ignore one. A UTF-8
# one is ignored (some Windows tools write it); the UTF-16 and UTF-32 ones are not UTF-8.
_UTF8_BOM = "\ufeff"
# A JSON string, closed or not (an unclosed one runs to the end). Possessive, so it never
# backtracks: stripping the strings of any body takes one linear pass.
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # +1 / -1, offset by one


def invalid_json(why: str) -> ApiError:
    return ApiError(400, "invalid_json", f"The body is not valid JSON: {why}.")


def json_text(body: bytes) -> str:
    """``body`` as the JSON text it must be: strict UTF-8, a leading UTF-8 BOM dropped.

    A U+0000 is refused with the same reason: JSON allows it nowhere unescaped, and it is
    what UTF-16 or UTF-32 text of ASCII characters decodes to, byte for byte valid UTF-8.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8() from None
    if "\x00" in text:
        raise _not_utf8()
    return text.removeprefix(_UTF8_BOM)


def _not_utf8() -> ApiError:
    return invalid_json("it must be UTF-8 (RFC 8259), not UTF-16, UTF-32 or other bytes")


def json_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text``, without parsing it.

    Strings are dropped first (brackets inside them do not count), then every bracket
    becomes a step of +1 or -1 and the deepest running total is the depth. Each step is
    C code (regex, ``bytes.translate``, ``itertools.accumulate``), so this costs a fraction
    of ``json.loads`` on the same text, however it is shaped. Up to the point where the
    parser would stop, this counts exactly the nesting the parser would enter.
    """
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text)).encode("ascii")
    steps = brackets.translate(_DEPTH_STEPS)
    return max(accumulate(map(operator.sub, steps, repeat(1))), default=0)


class _NotJson(ValueError):
    """A value Python's parser accepts but JSON (or a float) does not; safe to show."""


def _refuse_constant(name: str) -> float:
    raise _NotJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJson("a number overflows a 64-bit float")
    return value


def parse_json_text(text: str) -> Any:
    """Parse JSON text strictly, or raise ``400 invalid_json``.

    Every failure is the client's: nesting deeper than :data:`MAX_JSON_DEPTH` (refused
    before parsing), bad syntax, ``NaN``/``Infinity`` (not JSON), a number that overflows
    a float, an integer over Python's int-string limit (4300 digits).
    """
    if json_depth(text) > MAX_JSON_DEPTH:
        raise invalid_json(f"it nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except RecursionError:
        raise invalid_json("it nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise invalid_json(exc.msg) from None
    except _NotJson as exc:
        raise invalid_json(str(exc)) from None
    except ValueError:  # an integer over the int-string limit
        raise invalid_json("an integer has over 4300 digits") from None


def parse_json(body: bytes) -> Any:
    """Parse a request body: :func:`json_text`, then :func:`parse_json_text`."""
    return parse_json_text(json_text(body))
