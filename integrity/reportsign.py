"""The station's detached signature on a report PDF (coverage, chain of custody).

A report is printed for a review file or a court, far from the station. Beside
``report.pdf`` the station writes ``report.pdf.sig.json``: a statement naming the PDF's
size, SHA-256 and BLAKE3, what the report is about, who made it and when, and the
signed audit tree head it was made against; the station key signs the statement's JCS
bytes after :data:`CONTEXT` (so this signature never stands for a clip statement, a
manifest or a tree head signed by the same key). :func:`report_findings` checks it all
offline and reports every finding: a flipped byte of the PDF is a digest mismatch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from integrity import keys
from integrity.canonical import canonical_bytes, parse_json_object
from integrity.codes import Code
from integrity.digest import blake3_hex
from integrity.errors import EvidockError
from integrity.findings import Finding
from integrity.safefs import Refused, read_named_file

CONTEXT = b"evidock report signature v1\n"
FORMAT = "evidock-report-signature/1"
SUFFIX = ".sig.json"
KINDS = ("coverage", "custody")
MAX_REPORT = 256 * 1024 * 1024
MAX_SIGNATURE = 64 * 1024
_SIG_HEX = re.compile(r"[0-9a-f]{128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEAD_KEYS = frozenset({"size", "root", "time", "station_id", "key_id", "signature"})
_STATEMENT_KEYS = frozenset({"report", "subjects", "size", "sha256", "blake3", "made_at",
                             "made_by", "station_id", "audit_head"})


def statement(pdf: bytes, *, report: str, subjects: list[str], made_at: str, made_by: str,
              station_id: str, audit_head: Mapping[str, Any]) -> dict[str, Any]:
    """What the station signs about ``pdf`` (``audit_head``: a signed tree head's dict)."""
    return {"report": report, "subjects": list(subjects), "size": len(pdf),
            "sha256": hashlib.sha256(pdf).hexdigest(), "blake3": blake3_hex(pdf),
            "made_at": made_at, "made_by": made_by, "station_id": station_id,
            "audit_head": dict(audit_head)}


def sign_report(stmt: Mapping[str, Any], keypair: keys.KeyPair) -> bytes:
    """The bytes of the ``.sig.json`` file for a :func:`statement`."""
    signature = keys.sign(keypair, CONTEXT + canonical_bytes(dict(stmt)))
    return canonical_bytes({"format": FORMAT, "statement": dict(stmt), "alg": keypair.alg,
                            "key_id": keypair.key_id, "sig": signature.hex(),
                            "public_key": keypair.public.to_hex()})


def _shape(doc: Mapping[str, Any]) -> str | None:
    """Why ``doc`` is not a report signature (None: it has the right shape)."""
    if set(doc) != {"format", "statement", "alg", "key_id", "sig", "public_key"} \
            or doc["format"] != FORMAT \
            or not keys.signature_alg_ok(doc["alg"], doc["key_id"]):
        return "not an evidock report signature {format, statement, alg, key_id, sig, ...}"
    if not isinstance(doc["key_id"], str) or not keys.KEY_ID_RE.fullmatch(doc["key_id"]) \
            or not isinstance(doc["sig"], str) or not _SIG_HEX.fullmatch(doc["sig"]) \
            or not isinstance(doc["public_key"], str):
        return "key id, signature or public key malformed"
    stmt = doc["statement"]
    if not isinstance(stmt, dict) or set(stmt) != _STATEMENT_KEYS \
            or stmt["report"] not in KINDS or not isinstance(stmt["size"], int) \
            or not all(isinstance(stmt[k], str) and _HEX64.fullmatch(stmt[k])
                       for k in ("sha256", "blake3")):
        return "the signed statement is malformed"
    head = stmt["audit_head"]
    if not isinstance(head, dict) or set(head) != _HEAD_KEYS \
            or not all(isinstance(head[k], str) for k in _HEAD_KEYS - {"size"}) \
            or not isinstance(head["size"], int):
        return "the audit tree head in the statement is malformed"
    return None


def _digests(pdf: bytes, stmt: Mapping[str, Any], subject: str) -> list[Finding]:
    found = {"size": len(pdf), "sha256": hashlib.sha256(pdf).hexdigest(),
             "blake3": blake3_hex(pdf)}
    return [Finding(Code.E_DIGEST_MISMATCH, f"the report's {name} is not the one the "
                    "station signed: the PDF was changed", subject,
                    {"field": name, "signed": stmt[name], "found": value})
            for name, value in found.items() if stmt[name] != value]


def _key(doc: Mapping[str, Any], trusted: Mapping[str, keys.PublicKey] | None,
         subject: str) -> tuple[keys.PublicKey | None, list[Finding]]:
    """The key to check with: the trusted one given (``--key``), else the one the
    signature file carries (which proves only that the file agrees with itself)."""
    key_id = str(doc["key_id"])
    if trusted is not None:
        public = trusted.get(key_id)
        if public is None:
            return None, [Finding(Code.E_KEY_MISMATCH, "the report was not signed by the "
                                  "key given with --key", subject, {"key_id": key_id})]
        return public, []
    try:
        public = keys.PublicKey.from_hex(str(doc["public_key"]),
                                         keys.alg_of(key_id) or keys.ALG)
    except EvidockError:
        public = None
    if public is None or public.key_id != key_id:
        return None, [Finding(Code.E_KEY_UNKNOWN, "the signature file's public key is not "
                              "the signing key", subject, {"key_id": key_id})]
    return public, [Finding(Code.W_KEY_UNTRUSTED, "checked against the key in the signature "
                            "file only: give the station's public key with --key to know "
                            "who signed", subject, {"key_id": key_id})]


def _head(head: Mapping[str, Any], known: Mapping[str, keys.PublicKey],
          subject: str) -> list[Finding]:
    signed = canonical_bytes({k: head[k] for k in sorted(_HEAD_KEYS - {"signature"})})
    public = known.get(str(head["key_id"]))
    if public is None:
        return [Finding(Code.E_KEY_UNKNOWN, "the audit tree head was signed by another key "
                        "than the report (give the station keyring's key)", subject,
                        {"key_id": head["key_id"]})]
    try:
        sig = bytes.fromhex(str(head["signature"]))
    except ValueError:
        sig = b""
    if not keys.is_valid(public, signed, sig):
        return [Finding(Code.E_SIGNATURE_INVALID, "the audit tree head the report names "
                        "does not verify", subject, {"size": head["size"]})]
    return []


def report_findings(pdf: bytes, sig_bytes: bytes, *, subject: str = "report",
                    trusted: Mapping[str, keys.PublicKey] | None = None) -> list[Finding]:
    """Every reason the signature file does not vouch for these PDF bytes (warnings
    only, or nothing: it does)."""
    try:
        doc = parse_json_object(sig_bytes)
    except EvidockError as exc:
        return [Finding(Code.E_REPORT_INVALID, f"signature file unreadable: {exc.message}",
                        subject)]
    why = _shape(doc)
    if why is not None:
        return [Finding(Code.E_REPORT_INVALID, why, subject)]
    stmt = doc["statement"]
    findings = _digests(pdf, stmt, subject)
    public, key_findings = _key(doc, trusted, subject)
    findings += key_findings
    if public is None:
        return findings
    message = CONTEXT + canonical_bytes(stmt)
    if not keys.is_valid(public, message, bytes.fromhex(str(doc["sig"]))):
        findings.append(Finding(Code.E_SIGNATURE_INVALID, "the station's signature on the "
                                "report statement does not verify", subject,
                                {"key_id": public.key_id}))
    known = dict(trusted) if trusted is not None else {public.key_id: public}
    return findings + _head(stmt["audit_head"], known, subject)


def verify_report_file(path: Path, *, trusted: Mapping[str, keys.PublicKey] | None = None,
                       ) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Check ``path`` against ``path`` + :data:`SUFFIX`: (the signed statement if the
    file could be read, findings). Links and non-regular files are refused unread."""
    subject = path.name
    sig_path = path.with_name(path.name + SUFFIX)
    try:
        pdf = read_named_file(path, MAX_REPORT, code=Code.E_REPORT_INVALID)
        sig = read_named_file(sig_path, MAX_SIGNATURE, code=Code.E_REPORT_INVALID)
    except Refused as refused:
        return None, [refused.finding]
    except OSError as exc:
        return None, [Finding(Code.E_REPORT_INVALID, f"cannot read {exc.filename}: "
                              f"{exc.strerror}", subject)]
    findings = report_findings(pdf, sig, subject=subject, trusted=trusted)
    try:
        stmt: dict[str, Any] | None = parse_json_object(sig).get("statement")
    except EvidockError:
        stmt = None
    return (stmt if isinstance(stmt, dict) else None), findings


__all__ = ["CONTEXT", "FORMAT", "KINDS", "SUFFIX", "report_findings", "sign_report",
           "statement", "verify_report_file"]
