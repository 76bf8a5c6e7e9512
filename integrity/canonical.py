"""Canonical JSON (RFC 8785, JCS): the exact bytes that get hashed and signed.

Policy, stricter than JCS: **no floats at all**. JCS can encode floats, but a float
round-trips as a different Python type (``1.0`` encodes as ``1`` and parses back as an
int), and binary floats cannot say "33.366 ms" exactly. Manifests therefore carry media
times as integer microseconds (``start_us``) and sizes as integers; anything fractional
must be a decimal string. Integers must stay within JSON's exact range (±(2**53 - 1)).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, cast

import rfc8785

from integrity.errors import ManifestInvalid

#: Largest integer a JSON number holds exactly (IEEE 754 double).
MAX_SAFE_INT = 2**53 - 1


def canonical_bytes(obj: object) -> bytes:
    """JCS bytes of ``obj`` (dicts with str keys, lists/tuples, str, int, bool, None).

    Raises ManifestInvalid naming the JSON path of the first unsupported value.
    """
    _check_value(obj, "$")
    try:
        return rfc8785.dumps(cast(Any, obj))
    except rfc8785.CanonicalizationError as exc:  # e.g. lone surrogates in a str
        raise ManifestInvalid(f"cannot canonicalise: {exc}", field="$") from exc


def _check_value(value: object, path: str) -> None:
    # Iterative walk: manifests are shallow, but hostile input must not hit recursion limits.
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if item is None or isinstance(item, bool | str):
            continue
        if isinstance(item, int):
            if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                raise ManifestInvalid("integer outside JSON's exact range", field=where)
        elif isinstance(item, float):
            raise ManifestInvalid(
                "floats are not allowed; use integer microseconds or a decimal string",
                field=where,
            )
        elif isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise ManifestInvalid("object keys must be strings", field=where)
                stack.append((sub, f"{where}.{key}"))
        elif isinstance(item, list | tuple):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))
        else:
            raise ManifestInvalid(f"unsupported JSON type {type(item).__name__}", field=where)


def _no_float(text: str) -> Any:
    raise ManifestInvalid("floats are not allowed in canonical documents", value=text)


def _no_constant(text: str) -> Any:
    raise ManifestInvalid("NaN/Infinity are not JSON", value=text)


def _no_duplicates(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ManifestInvalid("duplicate object key", field=key)
        out[key] = value
    return out


def parse_json_object(data: bytes) -> dict[str, Any]:
    """Parse strict JSON (UTF-8, no floats, no duplicate keys) whose top level is an object.

    Does not require canonical form; see :func:`parse_canonical` for that.
    """
    try:
        text = data.decode("utf-8")
        obj = json.loads(
            text,
            parse_float=_no_float,
            parse_constant=_no_constant,
            object_pairs_hook=_no_duplicates,
        )
    except UnicodeDecodeError as exc:
        raise ManifestInvalid("not UTF-8", offset=exc.start) from exc
    except json.JSONDecodeError as exc:
        raise ManifestInvalid(f"not JSON: {exc.msg}", offset=exc.pos) from exc
    except RecursionError as exc:
        raise ManifestInvalid("JSON nested too deeply") from exc
    if not isinstance(obj, dict):
        raise ManifestInvalid("top level must be a JSON object", field="$")
    return obj


def parse_canonical(data: bytes) -> dict[str, Any]:
    """Parse ``data`` and insist it is already in canonical form (byte-for-byte).

    Re-encodes and compares, so whitespace, key order, escapes or number spelling that
    differ from JCS are all rejected with the offset of the first differing byte.
    """
    obj = parse_json_object(data)
    again = canonical_bytes(obj)
    if again != data:
        offset = next(
            (i for i, (a, b) in enumerate(zip(again, data, strict=False)) if a != b),
            min(len(again), len(data)),
        )
        raise ManifestInvalid("JSON is not in RFC 8785 canonical form", offset=offset)
    return obj
