"""Writing case records: create, close, link footage, record stage times, attach
documents, mark recordings.

Every write checks the permission gate first, then commits its rows and their audit
event in one transaction. Nothing is ever updated: an unlink, a closing or a relabel
is a new row (see :mod:`retention.models`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Collection
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Blob, Catalog, Recording
from archive.store import ContentStore
from config.access import SENSITIVITIES, CaseSettings
from config.retention import DEFAULT_PERMANENT_MARKS
from integrity.digest import Digests, Readable
from integrity.errors import Conflict, InvalidRequest, NotFound
from integrity.localfile import open_regular
from records.casebook import Casebook, CaseView, LinkView, believed_links, fold_links
from records.closing import check_closing, closing_floor
from records.dossier import MarkState, fold_marks, load_marks, require_recording
from records.marks import PermanentMarks, Unmarking
from records.models import Case, CaseAttachment, CaseEvent, CaseLink, CaseStage, RecordingMark
from records.permissions import Actor, Gate, P


class CaseDesk:
    def __init__(self, *, catalog: Catalog, store: ContentStore, gate: Gate, audit: AuditLog,
                 settings: CaseSettings, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 permanent_marks: Collection[str] = DEFAULT_PERMANENT_MARKS) -> None:
        self.catalog, self.gate, self.audit, self.settings = catalog, gate, audit, settings
        self.store = store
        self.clock, self.new_id = clock, new_id
        self.book = Casebook(catalog=catalog)
        # retention.permanent_marks: taking one off takes two people (records/marks.py)
        self.permanent_marks = frozenset(permanent_marks)

    # ------------------------------------------------------------------ helpers

    def visible_case(self, actor: Actor, key: str, permission: P) -> CaseView:
        """The case, if ``actor`` has ``permission`` on it (refusal audited)."""
        case = self.book.case(key)
        self.gate.require(actor, permission, subjects=[f"case:{case.id}"], unit=case.unit,
                          sensitivity=case.sensitivity)
        return case

    def _event(self, s: Session, actor: Actor, action: str, subjects: list[str],
               details: dict[str, object], *, at: datetime) -> None:
        self.audit.append(s, actor=actor.audit_name, action=action, subjects=subjects,
                          details=details, at=at)

    def _bound(self, s: Session, row: CaseLink | CaseEvent | RecordingMark, actor: Actor, *,
               event: tuple[str, list[str], dict[str, object]], at: datetime) -> None:
        # The row names its event and the event the row (archive/bindings.py).
        bind(s, self.audit, row, actor=actor.audit_name, action=event[0],
             subjects=event[1], details=event[2], at=at)

    def _check_vocab(self, *, case_type: str | None = None, unit: str | None = None,
                     stage: str | None = None, sensitivity: str | None = None) -> None:
        s = self.settings
        if case_type is not None and case_type not in s.types:
            raise InvalidRequest(f"unknown case type {case_type!r}; one of {list(s.types)}",
                                 case_type=case_type)
        if unit is not None and (not unit or (s.units and unit not in s.units)):
            raise InvalidRequest(f"unknown unit {unit!r}; one of {list(s.units)}", unit=unit)
        if stage is not None and stage not in s.stages:
            raise InvalidRequest(f"unknown stage {stage!r}; one of {list(s.stages)}",
                                 stage=stage)
        if sensitivity is not None and sensitivity not in SENSITIVITIES:
            raise InvalidRequest(f"unknown sensitivity {sensitivity!r}; one of "
                                 f"{list(SENSITIVITIES)}", sensitivity=sensitivity)

    # ------------------------------------------------------------------ cases

    def create(self, actor: Actor, *, number: str, case_type: str, unit: str,
               title: str = "", sensitivity: str = "none") -> CaseView:
        number = number.strip()
        if not self.settings.number_ok(number):
            raise InvalidRequest(f"case number {number!r} matches none of the agency's "
                                 "patterns (cases.number_patterns)", number=number)
        self._check_vocab(case_type=case_type, unit=unit, sensitivity=sensitivity)
        self.gate.require(actor, P.CASE_CREATE, subjects=[f"case-number:{number}"],
                          unit=unit, sensitivity=sensitivity)
        now = self.clock()
        row = Case(id=self.new_id(), number=number, case_type=case_type, unit=unit,
                   title=title, sensitivity=sensitivity, created_by=actor.name, created_at=now)
        with self.catalog.transaction() as s:
            if s.exec(select(Case).where(Case.number == number)).first() is not None:
                raise Conflict(f"case {number} already exists", number=number)
            s.add(row)
            self._event(s, actor, "case.create", [f"case:{row.id}"],
                        {"number": number, "type": case_type, "unit": unit,
                         "sensitivity": sensitivity}, at=now)
        return self.book.case(row.id)

    def _case_event(self, actor: Actor, key: str, *, kind: str, value: str = "",
                    effective_at: datetime | None = None, reason: str) -> CaseView:
        case = self.visible_case(actor, key, P.CASE_CLOSE)
        if not reason.strip():
            raise InvalidRequest("a reason is required", case=case.number)
        if (kind == "closed") == (case.status == "closed"):
            raise Conflict(f"case {case.number} is already {case.status}", case=case.number)
        now = self.clock()
        with self.catalog.transaction() as s:
            self._bound(s, CaseEvent(case_id=case.id, kind=kind, value=value,
                                     effective_at=effective_at or now, actor=actor.name,
                                     reason=reason, at=now), actor,
                        event=(f"case.{kind}", [f"case:{case.id}"],
                               {"number": case.number, "value": value, "reason": reason,
                                "effective_at": (effective_at or now).isoformat()}), at=now)
        return self.book.case(case.id)

    def close(self, actor: Actor, key: str, *, reason: str,
              closed_at: datetime | None = None) -> CaseView:
        """Close a case now, or at ``closed_at`` as recorded: never before the case's
        own record says it could have (records/closing.py), nor after the clock."""
        if closed_at is not None:
            case = self.visible_case(actor, key, P.CASE_CLOSE)  # refusal first, audited
            with Session(self.catalog.engine) as s:
                events = s.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)).all()
            links = self.book.links(case_id=case.id)
            floor = closing_floor(case, events=events, links=links,
                                  recordings=self.book.recordings(
                                      [x.recording_id for x in links if x.active]),
                                  stages=self.book.stages(case.id))
            check_closing(case, closed_at, floor=floor, now=self.clock())
        return self._case_event(actor, key, kind="closed", effective_at=closed_at,
                                reason=reason)

    def reopen(self, actor: Actor, key: str, *, reason: str) -> CaseView:
        return self._case_event(actor, key, kind="reopened", reason=reason)

    def relabel(self, actor: Actor, key: str, *, sensitivity: str, reason: str) -> CaseView:
        self._check_vocab(sensitivity=sensitivity)
        case = self.visible_case(actor, key, P.CASE_CLOSE)
        # The new label must be one the actor could see too, or they lock themselves out
        # of a case by accident; a supervisor with the clearance relabels upwards.
        self.gate.require(actor, P.CASE_CLOSE, subjects=[f"case:{case.id}"],
                          unit=case.unit, sensitivity=sensitivity)
        now = self.clock()
        with self.catalog.transaction() as s:
            self._bound(s, CaseEvent(case_id=case.id, kind="sensitivity", value=sensitivity,
                                     effective_at=now, actor=actor.name, reason=reason,
                                     at=now), actor,
                        event=("case.sensitivity", [f"case:{case.id}"],
                               {"number": case.number, "from": case.sensitivity,
                                "to": sensitivity, "reason": reason}), at=now)
        return self.book.case(case.id)

    # ------------------------------------------------------------------ footage

    def link(self, actor: Actor, key: str, recording_id: str, *, stage: str, reason: str,
             start_us: int | None = None, end_us: int | None = None) -> LinkView:
        """Link a recording, or [start_us, end_us) of it, to a case at a stage."""
        self._check_vocab(stage=stage)
        case = self.visible_case(actor, key, P.CASE_LINK)
        if not reason.strip():
            raise InvalidRequest("a reason is required for a link", case=case.number)
        _check_range(start_us, end_us)
        self._linkable(actor, case, recording_id)
        now = self.clock()
        with self.catalog.transaction() as s:
            if s.get(Recording, recording_id) is None:
                raise NotFound(f"no recording {recording_id}", recording=recording_id)
            row = CaseLink(case_id=case.id, recording_id=recording_id, action="link",
                           stage=stage, start_us=start_us, end_us=end_us,
                           actor=actor.name, reason=reason, at=now)
            s.add(row)
            s.flush()
            self._bound(s, row, actor, event=(
                "case.link", [f"case:{case.id}", f"recording:{recording_id}"],
                {"number": case.number, "link": row.id, "stage": stage,
                 "start_us": start_us, "end_us": end_us, "reason": reason}), at=now)
            link_id = row.id
        return next(v for v in self.book.links(case_id=case.id) if v.id == link_id)

    def _linkable(self, actor: Actor, case: CaseView, recording_id: str) -> None:
        """The actor must see the recording as its links already label it: a recording
        is as secret as the strictest case it is linked to, and linking it into a case
        of one's own must not be a way around that (refusal audited)."""
        if not self.book.recordings([recording_id]):
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        cases = self.book.sensitivity_of_recordings([recording_id])[recording_id]
        self.gate.require(actor, P.RECORDING_VIEW,
                          subjects=[f"case:{case.id}", f"recording:{recording_id}"])
        if not actor.sees_every(cases):
            self.gate.refuse(actor, P.CASE_LINK,
                             [f"case:{case.id}", f"recording:{recording_id}"],
                             f"{actor.name} may not see recording {recording_id} (it is "
                             "linked to a case beyond their units or clearance)")

    def unlink(self, actor: Actor, link_id: int, *, reason: str) -> LinkView:
        """Remove a link by adding an unlink row; the link stays in the history."""
        with Session(self.catalog.engine) as s:
            row = s.get(CaseLink, link_id)
        if row is None or row.action != "link":
            raise NotFound(f"no link {link_id}", link=link_id)
        case = self.visible_case(actor, row.case_id, P.CASE_LINK)
        if not reason.strip():
            raise InvalidRequest("a reason is required to unlink", link=link_id)
        now = self.clock()
        with self.catalog.transaction() as s:
            rows = believed_links(s, s.exec(select(CaseLink).where(CaseLink.case_id == case.id)))
            if any(v.id == link_id and not v.active for v in fold_links(rows)):
                raise Conflict(f"link {link_id} was already removed", link=link_id)
            self._bound(s, CaseLink(case_id=case.id, recording_id=row.recording_id,
                                    action="unlink", unlinks=link_id, stage=row.stage,
                                    actor=actor.name, reason=reason, at=now), actor,
                        event=("case.unlink",
                               [f"case:{case.id}", f"recording:{row.recording_id}"],
                               {"number": case.number, "link": link_id, "reason": reason}),
                        at=now)
        return next(v for v in self.book.links(case_id=case.id) if v.id == link_id)

    def stage(self, actor: Actor, key: str, *, stage: str, start_at: datetime,
              end_at: datetime, note: str = "") -> CaseStage:
        """When a stage took place (from the written record), for coverage checks."""
        self._check_vocab(stage=stage)
        if start_at.tzinfo is None or end_at.tzinfo is None or end_at <= start_at:
            raise InvalidRequest("a stage needs zoned start and end times, end after start",
                                 stage=stage)
        case = self.visible_case(actor, key, P.CASE_LINK)
        now = self.clock()
        row = CaseStage(case_id=case.id, stage=stage, start_at=start_at, end_at=end_at,
                        actor=actor.name, note=note, at=now)
        with self.catalog.transaction() as s:
            s.add(row)
            self._event(s, actor, "case.stage", [f"case:{case.id}"],
                        {"number": case.number, "stage": stage,
                         "start_at": start_at.isoformat(), "end_at": end_at.isoformat()}, at=now)
        return row


    # ------------------------------------------------------------------ documents

    def attach(self, actor: Actor, key: str, path: Path, *, description: str = "",
               ) -> CaseAttachment:
        """Store a document of the case (PDF, DOCX, scan…) by hash, as footage is stored."""
        case = self.visible_case(actor, key, P.CASE_ATTACH)
        fd = open_regular(path)
        try:
            digests = self._store_document(fd, path)
        finally:
            os.close(fd)
        return self._record_attachment(actor, case, digests, filename=path.name,
                                       description=description)

    def receive(self, actor: Actor, key: str, reader: Readable, *, filename: str,
                size: int, description: str = "") -> CaseAttachment:
        """Store a document a client sends (the service never opens a client's path).

        The permission is checked before a byte is read; ``size`` is what the client
        announced, and a stream that ends short or long stores nothing.
        """
        name = _document_name(filename)
        case = self.visible_case(actor, key, P.CASE_ATTACH)
        with self.store.stage() as stager:
            written = stager.copy(reader)
            if written.digests.size != size:
                raise Conflict(f"{name}: received {written.digests.size} bytes of the "
                               f"{size} announced; attach it again", filename=name,
                               expected=size, actual=written.digests.size)
            if size == 0:
                raise InvalidRequest(f"{name} is empty", filename=name)
            staged = stager.verify(written, subject=name)
            self.store.link(staged, vouched=lambda b3: self.catalog.blob(b3) is not None)
        return self._record_attachment(actor, case, written.digests, filename=name,
                                       description=description)

    def _record_attachment(self, actor: Actor, case: CaseView, digests: Digests, *,
                           filename: str, description: str) -> CaseAttachment:
        now = self.clock()
        row = CaseAttachment(case_id=case.id, blake3=digests.blake3, sha256=digests.sha256,
                             size=digests.size, filename=filename,
                             description=description.strip(), actor=actor.name, at=now)
        with self.catalog.transaction() as s:
            if s.get(Blob, digests.blake3) is None:
                s.add(Blob(blake3=digests.blake3, sha256=digests.sha256, size=digests.size,
                           stored_at=now))
            s.add(row)
            s.flush()
            self._event(s, actor, "case.attach", [f"case:{case.id}", f"blob:{digests.blake3}"],
                        {"number": case.number, "attachment": row.id, "filename": filename,
                         "size": digests.size, "sha256": digests.sha256,
                         "description": row.description}, at=now)
        return row

    def _store_document(self, fd: int, path: Path) -> Digests:
        """Copy + hash into staging, check the source held still, re-read, link by hash.

        The blob is linked into the store before its catalog row commits, as for footage:
        a blob left without a row is re-hashed before anyone trusts it.
        """
        before = os.fstat(fd)
        with self.store.stage() as stager:
            try:
                with open(fd, "rb", buffering=0, closefd=False) as src:
                    written = stager.copy(src)
            except OSError as exc:  # the store raises StoreError itself: this is the source
                raise InvalidRequest(f"cannot read {path}: {exc.strerror}",
                                     path=str(path)) from exc
            digests, after = written.digests, os.fstat(fd)
            if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) \
                    or digests.size != after.st_size:
                raise Conflict(f"{path} changed while it was copied; attach it again",
                               path=str(path))
            if digests.size == 0:
                raise InvalidRequest(f"{path} is empty", path=str(path))
            staged = stager.verify(written, subject=path.name)
            self.store.link(staged, vouched=lambda b3: self.catalog.blob(b3) is not None)
        return digests

    # ------------------------------------------------------------------ recordings

    def mark(self, actor: Actor, recording_id: str, *, mark: str, reason: str,
             remove: bool = False) -> MarkState | Unmarking:
        """Add (or remove) a mark such as 作为证据使用 on a recording. A permanent mark
        comes off only by two people (records/marks.py): this requests or confirms."""
        value = mark.strip()
        if not value:
            raise InvalidRequest("a mark cannot be empty", recording=recording_id)
        self._require_recording(actor, recording_id, reason)
        if remove and value in self.permanent_marks:
            return PermanentMarks(catalog=self.catalog, gate=self.gate, audit=self.audit,
                                  clock=self.clock).remove(actor, recording_id, value, reason)
        now = self.clock()
        with self.catalog.transaction() as s:
            rows = s.exec(select(RecordingMark)
                          .where(RecordingMark.recording_id == recording_id)).all()
            marks, _ = fold_marks(rows)
            if (value in marks) == (not remove):
                state = "already has" if value in marks else "does not have"
                raise Conflict(f"recording {recording_id} {state} mark {value!r}",
                               recording=recording_id, mark=value)
            action = "remove" if remove else "add"
            self._bound(s, RecordingMark(recording_id=recording_id, kind="mark",
                                         value=value, action=action, actor=actor.name,
                                         reason=reason, at=now), actor,
                        event=(f"recording.mark.{action}", [f"recording:{recording_id}"],
                               {"mark": value, "reason": reason}), at=now)
        return load_marks(self.catalog, [recording_id])[recording_id]

    def categorize(self, actor: Actor, recording_id: str, *, category: str,
                   reason: str) -> MarkState:
        """Set the recording's retention category (the latest one counts)."""
        value = category.strip()
        if not value:
            raise InvalidRequest("a category cannot be empty", recording=recording_id)
        self._require_recording(actor, recording_id, reason)
        now = self.clock()
        with self.catalog.transaction() as s:
            self._bound(s, RecordingMark(recording_id=recording_id, kind="category",
                                         value=value, actor=actor.name, reason=reason,
                                         at=now), actor, event=(
                            "recording.category", [f"recording:{recording_id}"],
                            {"category": value, "reason": reason}), at=now)
        return load_marks(self.catalog, [recording_id])[recording_id]

    def _require_recording(self, actor: Actor, recording_id: str, reason: str) -> None:
        if not self.book.recordings([recording_id]):
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        cases = self.book.sensitivity_of_recordings([recording_id])[recording_id]
        require_recording(self.gate, actor, P.RECORDING_MARK, recording_id, cases)
        if not reason.strip():
            raise InvalidRequest("a reason is required", recording=recording_id)


def _document_name(filename: str) -> str:
    """A document's name as a client gives it: one plain file name, nothing more."""
    name = filename.strip()
    if not name or name in (".", "..") or "/" in name or "\0" in name \
            or len(name.encode("utf-8", "surrogateescape")) > 255:
        raise InvalidRequest(f"{filename!r} is not a file name", filename=filename)
    return name


def _check_range(start_us: int | None, end_us: int | None) -> None:
    if start_us is not None and start_us < 0:
        raise InvalidRequest("a link's start cannot be negative", start_us=start_us)
    if start_us is not None and end_us is not None and end_us <= start_us:
        raise InvalidRequest("a link's end must come after its start", start_us=start_us,
                             end_us=end_us)


__all__ = ["CaseDesk"]
