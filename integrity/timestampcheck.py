"""The RFC 3161 tokens an export package carries (``data/timestamps.json``), checked
offline: no catalog, no network; only the package's bytes and the TSA roots given.

A package's signed things are its rendition manifest (``manifest.json``) and the tree
head its audit bundle is proven against (``audit-bundle.json`` "head"). For each the
file holds the stored token (base64 DER ``TimeStampResp``) with what it stamps, or a
"pending" entry (no TSA answered yet: a LAN station still exports). Each token is checked
with :func:`integrity.timestamp.verify_token` against the SHA-256 of the package's own
bytes, so a changed manifest or head, a token for another digest and a TSA that does not
chain to a given root are each a named finding. The claimed time is taken from the
signed bytes (the manifest's ``created_at``, the head's ``time``), never from this file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from integrity.canonical import canonical_bytes
from integrity.codes import Code
from integrity.errors import KeyError_
from integrity.findings import Finding
from integrity.safefs import Refused, read_named_file
from integrity.timestamp import verify_token

NAME = "timestamps.json"
FORMAT = "evidock-timestamps/1"
MANIFEST, TREE_HEAD = "manifest", "tree_head"  # archive.timestamp_rows' kinds
MANIFEST_FILE, HEAD_FILE = "manifest.json", "audit-bundle.json#head"
STAMPED, PENDING = "stamped", "pending"
MAX_ROOTS_FILE = 1 << 20


@dataclass(frozen=True, kw_only=True)
class Signed:
    """One signed thing in a package that a token should stamp."""

    kind: str
    file: str
    data: bytes  # the signed bytes the token's imprint is over
    claimed_at: datetime | None  # the station's signed time (None: unreadable)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def signed_in(manifest: bytes | None, bundle: bytes | None) -> list[Signed]:
    """The signed things of a package, from its manifest.json and audit-bundle.json
    bytes (either may be absent: a photo has no manifest, an old package no bundle)."""
    found: list[Signed] = []
    if manifest is not None:
        doc = _loads(manifest)
        found.append(Signed(kind=MANIFEST, file=MANIFEST_FILE, data=manifest,
                            claimed_at=_when(_get(_get(doc, "manifest"), "created_at"))))
    head = _get(_loads(bundle), "head") if bundle is not None else None
    if isinstance(head, dict):
        found.append(Signed(kind=TREE_HEAD, file=HEAD_FILE, data=canonical_bytes(head),
                            claimed_at=_when(head.get("time"))))
    return found


def entry(signed: Signed, *, token: bytes | None, tsa_url: str | None) -> dict[str, Any]:
    """One entry of timestamps.json (the writer's and the checker's one shape)."""
    base: dict[str, Any] = {
        "kind": signed.kind, "file": signed.file, "sha256": signed.sha256,
        "claimed_at": signed.claimed_at.isoformat() if signed.claimed_at else None,
        "state": PENDING if token is None else STAMPED}
    if token is not None:
        base |= {"token": base64.b64encode(token).decode("ascii"), "tsa_url": tsa_url}
    return base


def document(entries: Sequence[Mapping[str, Any]]) -> bytes:
    return json.dumps({"format": FORMAT, "entries": list(entries)}, ensure_ascii=False,
                      indent=2, sort_keys=True).encode() + b"\n"


@dataclass(frozen=True, kw_only=True)
class Result:
    findings: tuple[Finding, ...]
    #: per signed thing: state, and for a token the attested time beside the claimed one
    attested: tuple[dict[str, Any], ...]


def check(doc: Any, signed: Sequence[Signed], *,
          roots: tuple[x509.Certificate, ...] | None) -> Result:
    """Every finding for a parsed timestamps.json over the package's ``signed`` things.
    ``roots`` None: none given; a token's chain is then a warning, not a failure."""
    subject = NAME
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or not isinstance(
            entries, list) or not all(isinstance(e, dict) for e in entries):
        return Result(findings=(Finding(Code.E_PACKAGE_INVALID, f"not a timestamps file "
                                        f"(format {FORMAT})", subject),), attested=())
    findings: list[Finding] = []
    attested: list[dict[str, Any]] = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_file.setdefault(str(e.get("file")), []).append(e)
    for thing in signed:
        mine = by_file.pop(thing.file, [])
        if len(mine) != 1 or mine[0].get("kind") != thing.kind:
            findings.append(Finding(Code.E_TIMESTAMP_MISSING, f"{len(mine)} entries of kind "
                                    f"{thing.kind} for {thing.file}; one is expected",
                                    f"{subject}#{thing.file}"))
            continue
        got, row = _one(mine[0], thing, roots)
        findings += got
        attested.append(row)
    for file in sorted(set(by_file) - {MANIFEST_FILE, HEAD_FILE}):  # absent: named already
        findings.append(Finding(Code.E_TIMESTAMP_MISSING, "an entry for nothing the "
                                "package carries", f"{subject}#{file}"))
    return Result(findings=tuple(findings), attested=tuple(attested))


def _one(e: Mapping[str, Any], thing: Signed, roots: tuple[x509.Certificate, ...] | None,
         ) -> tuple[list[Finding], dict[str, Any]]:
    where = f"{NAME}#{thing.file}"
    row: dict[str, Any] = {"kind": thing.kind, "file": thing.file, "state": e.get("state"),
                           "claimed_at": thing.claimed_at.isoformat()
                           if thing.claimed_at else None}
    if e.get("state") == PENDING:  # nothing to check: the signatures vouch for the bytes
        return [Finding(Code.W_TIMESTAMP_PENDING, "no timestamp token yet: the station "
                        "had none when it exported (the time rests on its clock only)",
                        where)], row
    try:
        token = base64.b64decode(str(e.get("token")), validate=True)
    except (binascii.Error, ValueError):
        return [Finding(Code.E_TIMESTAMP_INVALID, "the token is not base64", where)], row
    result = verify_token(token, digest=bytes.fromhex(thing.sha256), roots=roots or (),
                          subject=where)
    found = list(result.findings)
    if roots is None:
        found = [f for f in found if f.code != Code.E_TIMESTAMP_UNTRUSTED]
        found.append(Finding(Code.W_TIMESTAMP_UNTRUSTED, "no TSA root given (--tsa-root): "
                             "the token's signer, so its time, is unchecked", where,
                             {"tsa": result.tsa_name}))
    if thing.claimed_at is not None:
        row |= result.against(thing.claimed_at)
    else:
        row |= {"attested_at": result.attested_at.isoformat() if result.attested_at
                else None, "tsa": result.tsa_name, "serial": result.serial}
    row["ok"] = not any(not f.code.startswith("W_") for f in found)
    return found, row


def load_roots(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """TSA roots a person gave (``--tsa-root``, PEM, several per file allowed). A link or
    a file that is not regular is refused unread; a bad PEM raises ``E_KEY``."""
    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            pem = read_named_file(path, MAX_ROOTS_FILE, code=Code.E_KEY_REFUSED)
            roots.extend(x509.load_pem_x509_certificates(pem))
        except Refused as refused:
            raise KeyError_(f"TSA root {path}: {refused.finding.message}",
                            path=str(path)) from None
        except (OSError, ValueError) as exc:
            raise KeyError_(f"TSA root {path}: not readable PEM certificates: {exc}",
                            path=str(path)) from exc
    return tuple(roots)


def _loads(raw: bytes | None) -> Any:
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None  # the package check names an unreadable document


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _when(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
