"""The catalog checked against what the station signed (archive/seals.py) and its log.

For a recording: its ``seal`` row, the signed record that blob holds (key, signature,
every field against the row: ``E_CATALOG_MISMATCH`` naming the field and both values),
and the audit event of its ingest (it must name the same record, and its digests,
size, status and flags must be the row's). A row with no seal or no such event is
``E_CATALOG_UNSIGNED``. For a dock session: each seal against the row and its files
(a seal made before the first wipe covers the files up to then). In the store: a signed
record that the catalog does not name is a row that was lost (``E_CATALOG_ROW_MISSING``,
when a session record lists it or it is a session) or an ingest killed before its commit
(``W_RECORD_UNCOMMITTED``). The signed audit heads inside session records are handed to
the log verification, so a log cut short (its WAL deleted) is ``E_AUDIT_TRUNCATED``.

Rows that carry authority (decisions, links, holds, marks, retention steps) are checked
against the audit events that vouch for them (:func:`archive.bindings.check_all`).

Rows are read raw where an attacker may have filled them with garbage.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Text, type_coerce
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from archive.audit.format import SignedHead
from archive.audit.log import AuditEvent
from archive.audit.verify import AuditReport, verify_log
from archive.bindings import check_all
from archive.catalog import Blob, Catalog, DockSession, Recording, SessionFile, Wipe
from archive.catalog.models import Seal
from archive.catalog.types import table_of
from archive.seals import file_body, recording_body, session_fields
from archive.store import ContentStore
from integrity import records
from integrity.codes import Code
from integrity.errors import EvidockError
from integrity.findings import Finding
from integrity.keys import Keyring

E_CATALOG_UNSIGNED = Code.E_CATALOG_UNSIGNED
E_CATALOG_ROW_MISSING = Code.E_CATALOG_ROW_MISSING
E_CATALOG_MISMATCH = Code.E_CATALOG_MISMATCH
W_RECORD_UNCOMMITTED = Code.W_RECORD_UNCOMMITTED
_HEX2 = re.compile(r"^[0-9a-f]{2}$")
#: What the ingest event says about a recording, by the row field it must equal.
_EVENT_FIELDS = {"size": "size", "blake3": "blake3", "sha256": "sha256",
                 "status": "status", "flags": "flags", "path": "original_display"}
_CLOSE = ("ended_at", "outcome", "error_code")


@dataclass
class CatalogCheck:
    """What :meth:`SealCheck.everything` found, and the signed heads it met."""

    findings: list[Finding] = field(default_factory=list)
    heads: list[tuple[str, SignedHead]] = field(default_factory=list)
    recordings: int = 0
    sessions: int = 0
    authority: int = 0


class SealCheck:
    def __init__(self, *, catalog: Catalog, store: ContentStore,
                 keyring: Keyring | None) -> None:
        self.catalog, self.store, self.keyring = catalog, store, keyring

    # ------------------------------------------------------------------ one record

    def load(self, b3: str, subject: str) -> records.SignedRecord | Finding:
        """The signed record stored as blob ``b3`` (a regular file, bounded), checked."""
        try:
            data = _read_small(str(self.store.path_for(b3)))
        except FileNotFoundError:
            return Finding(Code.E_MISSING_FILE, "signed record missing from the store",
                           subject, {"blake3": b3})
        except OSError as exc:
            return Finding(records.E_RECORD_INVALID, f"signed record unreadable: "
                           f"{exc.strerror or exc}", subject, {"blake3": b3})
        if data is None:
            return Finding(records.E_RECORD_INVALID, "signed record is not a regular file "
                           "of a record's size", subject, {"blake3": b3})
        return records.parse(data, subject)

    def _signed(self, b3: str, subject: str, kind: str,
                findings: list[Finding]) -> records.SignedRecord | None:
        got = self.load(b3, subject)
        if isinstance(got, Finding):
            findings.append(got)
            return None
        findings += records.check_signature(got, self.keyring, subject)
        if got.kind != kind or got.body.get("id") != subject.partition(":")[2]:
            findings.append(Finding(E_CATALOG_MISMATCH, f"the seal names another {kind}",
                                    subject, {"field": "id", "signed": got.subject,
                                              "blake3": b3}))
            return None
        return got

    def recording(self, rec: Recording) -> list[Finding]:
        """The recording row against its signed record and its ingest event."""
        with Session(self.catalog.engine) as s:
            seals = list(s.exec(select(Seal).where(Seal.kind == "recording",
                                                   Seal.subject == rec.id)))
            events = {x.audit_seq: _event(s, x.audit_seq) for x in seals}
        return self._recording(rec, [(x.blake3, events[x.audit_seq]) for x in seals])

    def _recording(self, rec: Recording, seals: Sequence[tuple[str, _Event | None]],
                   ) -> list[Finding]:
        subject = f"recording:{rec.id}"
        if not seals:
            return [Finding(E_CATALOG_UNSIGNED, "recording has no signed record: inserted "
                            "into the catalog, or its seal removed", subject,
                            {"blake3": rec.blake3, "device_serial": rec.device_serial})]
        findings: list[Finding] = []
        row = recording_body(rec)
        for b3, event in seals:
            signed = self._signed(b3, subject, "recording", findings)
            if signed is not None:
                findings += records.differences(subject, row, signed.body)
            findings += _against_event(subject, rec, b3, event)
        return findings

    # ------------------------------------------------------------------ sessions

    def session(self, dock: DockSession, files: list[SessionFile],
                seals: Sequence[tuple[str, str]], wiped: bool) -> list[Finding]:
        """The session row and its files against each of its seals ((blake3, stage))."""
        subject = f"session:{dock.id}"
        findings: list[Finding] = []
        stages = {stage for _, stage in seals}
        if dock.outcome is not None and "end" not in stages or wiped and not stages:
            findings.append(Finding(E_CATALOG_UNSIGNED, "dock session has no signed record "
                                    "of its end" if dock.outcome else "camera files were "
                                    "wiped in a session never sealed", subject))
        row, listed = session_fields(dock), [file_body(f) for f in files]
        for b3, _stage in seals:
            signed = self._signed(b3, subject, "session", findings)
            if signed is None:
                continue
            body = signed.body
            ended = body.get("stage") == "end"
            names = tuple(k for k in row if ended or k not in _CLOSE)
            findings += records.differences(subject, row, body, fields=names)
            findings += _files(subject, listed, body.get("files"), whole=ended)
        return findings

    # ------------------------------------------------------------------ everything

    def everything(self) -> CatalogCheck:
        """Every recording and session row, and every record the catalog lost."""
        out = CatalogCheck()
        listed: set[str] = set()
        with Session(self.catalog.engine) as s:
            for rec, rec_seals in _recordings_with_seals(s):
                out.recordings += 1
                out.findings += self._recording(rec, rec_seals)
            for dock, files, seals, wiped in _sessions(s):
                out.sessions += 1
                out.findings += self.session(dock, files, seals, wiped)
                for b3, _ in seals:
                    self._collect(b3, out, listed)
            known_recordings = {str(x) for x in s.exec(select(col(Recording.id)))}
            known_sessions = {str(x) for x in s.exec(select(col(DockSession.id)))}
            orphans = list(s.exec(select(Seal)))
            bound, out.authority = check_all(s)
        out.findings += bound
        out.findings += [
            Finding(E_CATALOG_ROW_MISSING, f"a seal names {x.kind} {x.subject}, which the "
                    "catalog no longer has: its row was deleted", f"{x.kind}:{x.subject}",
                    {"blake3": x.blake3, "audit_seq": x.audit_seq})
            for x in orphans if x.subject not in (
                known_recordings if x.kind == "recording" else known_sessions)]
        strays = list(self.stray_records())
        for _b3, stray in strays:
            if stray.kind == "session":
                out.heads += _head_of(stray)
                listed.update(_listed(stray))
        for b3, stray in strays:
            out.findings += self._stray(b3, stray, listed, known_recordings, known_sessions)
        return out

    def _collect(self, b3: str, out: CatalogCheck, listed: set[str]) -> None:
        got = self.load(b3, f"seal:{b3}")
        if isinstance(got, records.SignedRecord) and not records.check_signature(
                got, self.keyring, ""):
            out.heads += _head_of(got)
            listed.update(_listed(got))

    def _stray(self, b3: str, rec: records.SignedRecord, listed: set[str],
               recordings: set[str], sessions: set[str]) -> list[Finding]:
        subject = rec.subject
        findings = records.check_signature(rec, self.keyring, subject)
        rid = str(rec.body.get("id"))
        known = recordings if rec.kind == "recording" else sessions
        details = {"blake3": b3, "signed": {k: v for k, v in rec.body.items()
                                            if k not in ("files", "audit_head")}}
        if rid in known:
            findings.append(Finding(E_CATALOG_UNSIGNED, f"the {rec.kind}'s signed record "
                                    "is in the store but its seal row is gone", subject,
                                    details))
        elif rec.kind == "session" or rid in listed:
            findings.append(Finding(E_CATALOG_ROW_MISSING, f"the store holds the signed "
                                    f"record of this {rec.kind}; the catalog has no row "
                                    "for it: rows were lost or deleted", subject, details))
        else:
            findings.append(Finding(W_RECORD_UNCOMMITTED, "a signed recording record no "
                                    "row and no session record names: an ingest killed "
                                    "before its commit?", subject, details))
        return findings

    def stray_records(self) -> Iterator[tuple[str, records.SignedRecord]]:
        """Signed records in the store that no Blob row names (parsed; others skipped)."""
        root = str(self.store.root)
        if not os.path.isdir(root):
            return
        b = table_of(Blob)
        for top in sorted(os.listdir(root)):
            if not _HEX2.match(top):
                continue
            upper = format(int(top, 16) + 1, "02x") if top != "ff" else "g"
            with self.catalog.engine.connect() as conn:
                known = set(conn.execute(core_select(b.c.blake3).where(
                    b.c.blake3 >= top, b.c.blake3 < upper)).scalars())
            for dirpath, _dirs, names in os.walk(os.path.join(root, top)):
                for name in sorted(set(names) - known):
                    got = _record_at(os.path.join(dirpath, name))
                    if got is not None:
                        yield name, got


@dataclass(frozen=True)
class _Event:
    action: str
    subjects: Any
    details: Any


def _event(s: Session, seq: int) -> _Event | None:
    t = table_of(AuditEvent)
    row = s.connection().execute(core_select(
        t.c.action, type_coerce(t.c.subjects, Text), type_coerce(t.c.details, Text))
        .where(t.c.seq == seq)).first()
    if row is None:
        return None
    try:
        return _Event(str(row[0]), json.loads(row[1]), json.loads(row[2]))
    except (TypeError, ValueError):
        return _Event(str(row[0]), None, None)


def _against_event(subject: str, rec: Recording, b3: str, event: _Event | None,
                   ) -> list[Finding]:
    rid = subject.partition(":")[2]
    if (event is None or event.action != "ingest.file" or not isinstance(event.details, dict)
            or not isinstance(event.subjects, list) or rid not in event.subjects
            or event.details.get("record") != b3):
        return [Finding(E_CATALOG_UNSIGNED, "no audit event of the recording's ingest names "
                        "its signed record", subject, {"record": b3})]
    row = recording_body(rec)
    return [Finding(E_CATALOG_MISMATCH, f"catalog {name} differs from the ingest's audit "
                    "event", subject, {"field": name, "catalog": row[name],
                                       "logged": event.details.get(key)})
            for key, name in _EVENT_FIELDS.items() if event.details.get(key) != row[name]]


def _files(subject: str, catalog: list[dict[str, Any]], signed: object, *,
           whole: bool) -> list[Finding]:
    if not isinstance(signed, list):
        return [Finding(records.E_RECORD_INVALID, "session record has no file list", subject)]
    findings: list[Finding] = []
    if len(catalog) < len(signed) or whole and len(catalog) != len(signed):
        findings.append(Finding(E_CATALOG_MISMATCH, "the catalog lists another number of "
                                "files for this session than its signed record", subject,
                                {"field": "files", "catalog": len(catalog),
                                 "signed": len(signed)}))
    for i, (row, sig) in enumerate(zip(catalog, signed, strict=False)):
        if isinstance(sig, dict):
            findings += records.differences(subject, row, sig, prefix=f"files[{i}].")
    return findings


def _head_of(rec: records.SignedRecord) -> list[tuple[str, SignedHead]]:
    head = rec.body.get("audit_head")
    if rec.kind != "session" or not isinstance(head, dict):
        return []
    try:
        return [(f"sealed:{rec.subject}:{rec.body.get('stage')}", SignedHead.from_dict(head))]
    except EvidockError:
        return []


def _listed(rec: records.SignedRecord) -> set[str]:
    files = rec.body.get("files") if rec.kind == "session" else None
    return {str(f["recording_id"]) for f in files or [] if isinstance(f, dict)
            and f.get("recording_id")} if isinstance(files, list) else set()


def _read_small(path: str) -> bytes | None:
    """A regular file's bytes if it is no larger than a record may be; None otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > records.MAX_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(records.MAX_BYTES + 1)
    finally:
        os.close(fd)


def _record_at(path: str) -> records.SignedRecord | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not records.looks_like_record(
                os.pread(fd, len(records.PREFIX), 0)):
            return None
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = _read_small(path)
    except OSError:
        return None
    got = records.parse(data, path) if data is not None else None
    return got if isinstance(got, records.SignedRecord) else None


def _recordings_with_seals(s: Session,
                           ) -> Iterator[tuple[Recording, list[tuple[str, _Event | None]]]]:
    seals: dict[str, list[tuple[str, int]]] = {}
    for seal in s.exec(select(Seal).where(Seal.kind == "recording")):
        seals.setdefault(seal.subject, []).append((seal.blake3, seal.audit_seq))
    for rec in s.exec(select(Recording).order_by(col(Recording.id))):
        yield rec, [(b3, _event(s, seq)) for b3, seq in seals.get(rec.id, [])]


def _sessions(s: Session) -> Iterator[tuple[DockSession, list[SessionFile],
                                             list[tuple[str, str]], bool]]:
    seals: dict[str, list[tuple[str, str]]] = {}
    for seal in s.exec(select(Seal).where(Seal.kind == "session").order_by(col(Seal.at))):
        seals.setdefault(seal.subject, []).append((seal.blake3, seal.stage))
    wiped = {str(x) for x in s.exec(select(col(Wipe.session_id)))}
    for dock in s.exec(select(DockSession).order_by(col(DockSession.started_at))):
        files = list(s.exec(select(SessionFile).where(SessionFile.session_id == dock.id)
                            .order_by(col(SessionFile.id))))
        yield dock, files, seals.get(dock.id, []), dock.id in wiped


def verify_catalog(catalog: Catalog, store: ContentStore, *, keyring: Keyring | None,
                   saved: Sequence[SignedHead] = (),
                   kept: Sequence[tuple[str, SignedHead]] = ()) -> AuditReport:
    """`audit verify`: the log (against its stored heads, ``saved`` ones, those sealed in
    session records and ``kept`` ones with their subjects, e.g. the heads the center
    countersigned) and the catalog against the signed records."""
    check = SealCheck(catalog=catalog, store=store, keyring=keyring).everything()
    report = verify_log(catalog.engine, keyring=keyring, saved=saved,
                        sealed=[*check.heads, *kept])
    return replace(report, findings=report.findings + tuple(check.findings),
                   recordings=check.recordings, sessions=check.sessions,
                   authority=check.authority)


__all__ = ["CatalogCheck", "SealCheck", "verify_catalog"]
