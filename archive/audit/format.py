"""The audit log's formats: event encoding (JCS) and signed tree heads.

Kept apart from :mod:`ingest.audit` (tables, appends) so that verifiers and offline
checkers need no database code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from archive.keystore import StationKeys
from integrity.canonical import MAX_SAFE_INT, canonical_bytes
from integrity.errors import AuditError, EvidockError
from integrity.findings import E_KEY_UNKNOWN, E_SIGNATURE_INVALID, Finding
from integrity.keys import Keyring, is_valid, sign
from integrity.merkle import leaf_hash

GENESIS = "0" * 64


# --------------------------------------------------------------------------- encoding


def iso(at: datetime) -> str:
    """The one text form of a time in hashed and signed bytes: UTC, microseconds, Z."""
    if at.tzinfo is None:
        raise AuditError("naive datetime given to the audit log; pass aware UTC")
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_iso(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise AuditError(f"{what} is not a time string", field=what)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise AuditError(f"{what} is not an ISO 8601 time", field=what, value=value) from None
    if at.tzinfo is None:
        raise AuditError(f"{what} has no time zone", field=what, value=value)
    return at


def text_fields(data: Mapping[str, Any], keys: Sequence[str], what: str,
                **details: Any) -> dict[str, str]:
    """``data``'s ``keys``, each a string, or AuditError naming the first that is not."""
    out: dict[str, str] = {}
    for key in keys:
        value = data.get(key)
        if not isinstance(value, str):
            raise AuditError(f"{what}: field {key!r} missing or not a string", field=key,
                             **details)
        out[key] = value
    return out


def event_body(*, at: datetime, actor: str, action: str, subjects: Sequence[str],
               details: Mapping[str, Any], prev: str) -> dict[str, Any]:
    return {"v": 1, "at": iso(at), "actor": actor, "action": action,
            "subjects": list(subjects), "details": dict(details), "prev": prev}


def encode(body: Mapping[str, Any]) -> bytes:
    """JCS bytes of an event body (validated: no floats, safe integers, str keys)."""
    try:
        return canonical_bytes(body)
    except EvidockError as exc:
        raise AuditError(f"audit event is not canonical JSON: {exc.message}",
                         **exc.details) from exc


def encode_fast(body: Mapping[str, Any]) -> bytes:
    """Same bytes as :func:`encode`, and the same refusals, several times faster.

    For ASCII-only JSON of plain values (str keys, no floats, integers in the safe range)
    Python's sorted compact dump is byte-identical to JCS: the same escapes (\\b \\t \\n
    \\f \\r, lower-case \\u00xx) and, for ASCII keys, the same key order. Anything else
    takes the exact (and validating) path.
    """
    if is_plain(body):
        try:
            text_ = json.dumps(body, sort_keys=True, ensure_ascii=False,
                               separators=(",", ":"), check_circular=False)
        except (TypeError, ValueError):
            text_ = ""
        if text_ and text_.isascii():
            return text_.encode("ascii")
    return encode(body)


def is_plain(value: object) -> bool:
    """Only dicts with str keys, lists, str, bool, None and safe-range ints."""
    stack = [value]
    while stack:
        item = stack.pop()
        # isinstance for str: both encoders dump a str subclass (a Code) as its text
        if isinstance(item, str) or type(item) is bool or item is None:
            continue
        if type(item) is int:  # exact types, not isinstance: no IntEnum or other subclass
            if not -MAX_SAFE_INT <= item <= MAX_SAFE_INT:
                return False
        elif type(item) is dict:
            if not all(type(k) is str for k in item):
                return False
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
        else:
            return False
    return True


def leaf_hex(data: bytes) -> str:
    return leaf_hash(data).hex()


# --------------------------------------------------------------------------- heads


@dataclass(frozen=True)
class SignedHead:
    """A signed statement: the log had ``size`` events with Merkle root ``root``."""

    size: int
    root: str
    time: datetime
    station_id: str
    key_id: str
    signature: str

    def signed_bytes(self) -> bytes:
        return canonical_bytes({"size": self.size, "root": self.root, "time": iso(self.time),
                                "station_id": self.station_id, "key_id": self.key_id})

    def to_dict(self) -> dict[str, Any]:
        return {"size": self.size, "root": self.root, "time": iso(self.time),
                "station_id": self.station_id, "key_id": self.key_id,
                "signature": self.signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedHead:
        if not isinstance(data, Mapping):
            raise AuditError("a tree head is a JSON object")
        size = data.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise AuditError("tree head size must be a non-negative integer", field="size")
        strings = text_fields(data, ("root", "station_id", "key_id", "signature"),
                              "tree head")
        return cls(size, strings["root"], parse_iso(data.get("time"), "time"),
                   strings["station_id"], strings["key_id"], strings["signature"])


    def check(self, keyring: Keyring | None, subject: str) -> list[Finding]:
        """Key known and signature valid; findings, never raises."""
        key = keyring.get(self.key_id) if keyring is not None else None
        if key is None:
            return [Finding(E_KEY_UNKNOWN, "tree head signed by a key not in the keyring",
                            subject, {"key_id": self.key_id})]
        try:
            signature = bytes.fromhex(self.signature)
        except ValueError:
            signature = b""
        if not is_valid(key, self.signed_bytes(), signature):
            return [Finding(E_SIGNATURE_INVALID, "tree head signature does not verify",
                            subject, {"key_id": self.key_id, "size": self.size})]
        return []


def head_of(row: Any) -> SignedHead:
    """The signed head a TreeHead row (ORM object or Core row) holds."""
    return SignedHead(int(row.size), row.root, row.time, row.station_id, row.key_id,
                      row.signature)


class HeadSigner:
    """Signs tree heads with the station key."""

    def __init__(self, *, keys: StationKeys, station_id: str) -> None:
        self.keys = keys
        self.station_id = station_id

    def available(self) -> bool:
        return self.keys.exists()

    def keyring(self) -> Keyring:
        return self.keys.keyring()

    def sign(self, *, size: int, root: bytes, at: datetime) -> SignedHead:
        key = self.keys.load()
        unsigned = SignedHead(size, root.hex(), at, self.station_id, key.key_id, "")
        signature = sign(key, unsigned.signed_bytes())
        return SignedHead(size, root.hex(), at, self.station_id, key.key_id, signature.hex())
