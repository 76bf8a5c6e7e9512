"""JSON from untrusted bytes: strict UTF-8, bounded nesting, no duplicate keys.

``json.loads`` recurses once per nesting level, and ``bytes`` input is silently taken as
UTF-16 or UTF-32 when it looks like it. So the bytes are decoded as UTF-8 first, and the
nesting depth is measured without recursion (strings removed by one linear regular
expression, then the brackets counted) before the parser ever sees them.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate, chain, count
from operator import sub
from typing import Any

from integrity.codes import Code
from integrity.safefs import Refused

MAX_JSON_DEPTH = 32  # ours nest at most 6 deep
# A string to its closing quote, or to the end of the text when it never closes: each
# byte is looked at once (possessive: no backtracking), so no input makes it slow.
_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_WEIGHT = str.maketrans("[{]}", "\x02\x02\x00\x00")  # an opening bracket weighs 2


def json_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in ``text`` (0 for a scalar)."""
    marks = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_WEIGHT)
    # The depth after k brackets is (sum of their weights) - k; C-level iterators only.
    return int(max(chain((0,), map(sub, accumulate(map(ord, marks)), count(1)))))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_text(raw: bytes, subject: str) -> str:
    """``raw`` as UTF-8 text not nested deeper than :data:`MAX_JSON_DEPTH`, else refused."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refused(Code.E_PACKAGE_ENCODING, f"not UTF-8 (byte {exc.start})", subject,
                      offset=exc.start) from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise Refused(Code.E_PACKAGE_LIMIT, f"JSON nested {depth} deep, more than "
                      f"{MAX_JSON_DEPTH}: not parsed", subject, depth=depth,
                      limit=MAX_JSON_DEPTH)
    return text


def loads(raw: bytes, subject: str) -> Any:
    """Parse untrusted JSON bytes, or raise :class:`Refused` saying why not."""
    text = check_text(raw, subject)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates,
                          parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise Refused(Code.E_PACKAGE_INVALID, f"not valid JSON: {exc}", subject) from None


def brief(value: Any, limit: int = 200) -> Any:
    """A value from an untrusted document as a finding may quote it: cut when long."""
    text = json.dumps(value, ensure_ascii=False)
    return value if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"
