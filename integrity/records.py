"""Signed records: what the station asserts a catalog row is (a recording, a dock session).

The catalog is an index; these records are the statements it can be checked against.
Each is sealed once with the station key (Ed25519, as rendition manifests are) and kept
in the content store, so whoever can write the catalog file can change a row but not
what the station signed about it.

File form (RFC 8785 canonical bytes, no trailing newline)::

    {"body": {...}, "evidock_record": 1, "kind": "recording" | "session",
     "signature": {"alg": "ed25519", "key_id": "ed25519:...", "sig": "<128 hex>"}}
    (or "sm2" / "sm2:..." on a station of the gm profile)

The signature covers the canonical bytes of ``{"body", "evidock_record", "kind"}``.
Pure: no files, no clock, no database. Parsing is bounded (size, depth) and returns a
finding instead of raising, so a hostile object in the store is reported, not fatal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from integrity import keys
from integrity.canonical import canonical_bytes, parse_canonical
from integrity.codes import Code
from integrity.errors import EvidockError, SignatureInvalid
from integrity.findings import E_KEY_UNKNOWN, E_SIGNATURE_INVALID, Finding
from integrity.safejson import json_depth

VERSION = 1
KINDS = ("recording", "session")
#: A session record lists every file of one offload (a few hundred bytes each).
MAX_BYTES = 16 << 20
MAX_DEPTH = 8
#: How every record file starts (canonical key order puts "body" first): a cheap test
#: for "is this object in the store a record?" before anything is parsed.
PREFIX = b'{"body":{'
E_RECORD_INVALID = Code.E_RECORD_INVALID
E_CATALOG_MISMATCH = Code.E_CATALOG_MISMATCH


@dataclass(frozen=True)
class SignedRecord:
    kind: str
    body: dict[str, Any]
    key_id: str
    signature_hex: str

    def message(self) -> bytes:
        return signed_message(self.kind, self.body)

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.body.get('id')}"


def signed_message(kind: str, body: Mapping[str, Any]) -> bytes:
    """The bytes the signature covers."""
    return canonical_bytes({"body": dict(body), "evidock_record": VERSION, "kind": kind})


def seal(kind: str, body: Mapping[str, Any], keypair: keys.KeyPair) -> bytes:
    """The record's file bytes, signed with ``keypair``."""
    if kind not in KINDS:
        raise ValueError(f"unknown record kind {kind!r}")
    sig = keys.sign(keypair, signed_message(kind, body))
    return canonical_bytes({"body": dict(body), "evidock_record": VERSION, "kind": kind,
                            "signature": {"alg": keypair.alg, "key_id": keypair.key_id,
                                          "sig": sig.hex()}})


def looks_like_record(head: bytes) -> bool:
    """Whether a file starting with ``head`` may be a record (worth parsing)."""
    return head.startswith(PREFIX)


def parse(data: bytes, subject: str) -> SignedRecord | Finding:
    """The record in ``data``, or the finding that says why it is none."""
    if len(data) > MAX_BYTES:
        return _invalid(subject, f"larger than {MAX_BYTES} bytes", size=len(data))
    try:
        text = data.decode("utf-8")
        if json_depth(text) > MAX_DEPTH:
            return _invalid(subject, f"nested deeper than {MAX_DEPTH}")
        doc = parse_canonical(data)
    except UnicodeDecodeError:
        return _invalid(subject, "not UTF-8")
    except EvidockError as exc:
        return _invalid(subject, exc.message)
    if set(doc) != {"body", "evidock_record", "kind", "signature"}:
        return _invalid(subject, "not a record object", fields=sorted(doc))
    sig = doc["signature"]
    if (doc["evidock_record"] != VERSION or doc["kind"] not in KINDS
            or not isinstance(doc["body"], dict) or not isinstance(sig, dict)
            or set(sig) != {"alg", "key_id", "sig"}
            or not keys.signature_alg_ok(sig["alg"], sig["key_id"])
            or not isinstance(sig["key_id"], str) or not isinstance(sig["sig"], str)):
        return _invalid(subject, "unknown record version, kind or signature form")
    return SignedRecord(doc["kind"], doc["body"], sig["key_id"], sig["sig"])


def _invalid(subject: str, why: str, **details: Any) -> Finding:
    return Finding(E_RECORD_INVALID, f"not a valid signed record: {why}", subject, details)


def check_signature(record: SignedRecord, keyring: keys.Keyring | None,
                    subject: str) -> list[Finding]:
    """Key known and signature valid; findings, never raises."""
    public = keyring.get(record.key_id) if keyring is not None else None
    if public is None:
        return [Finding(E_KEY_UNKNOWN, "record signed by a key not in the keyring", subject,
                        {"key_id": record.key_id})]
    try:
        keys.verify(public, record.message(), bytes.fromhex(record.signature_hex))
    except (ValueError, SignatureInvalid):
        return [Finding(E_SIGNATURE_INVALID, "record signature does not verify", subject,
                        {"key_id": record.key_id})]
    return []


def differences(subject: str, catalog: Mapping[str, Any], signed: Mapping[str, Any],
                *, fields: tuple[str, ...] | None = None, prefix: str = "") -> list[Finding]:
    """One E_CATALOG_MISMATCH per field whose catalog value is not the signed one."""
    names = fields if fields is not None else tuple(sorted(catalog.keys() | signed.keys()))
    return [Finding(E_CATALOG_MISMATCH, f"catalog {prefix}{name} differs from the signed "
                    "record", subject, {"field": f"{prefix}{name}",
                                        "catalog": catalog.get(name),
                                        "signed": signed.get(name)})
            for name in names if catalog.get(name) != signed.get(name)]


__all__ = ["KINDS", "MAX_BYTES", "PREFIX", "SignedRecord", "check_signature",
           "differences", "looks_like_record", "parse", "seal", "signed_message"]
