"""Export approvals (未经批准不得擅自对外提供): request → approve or reject → run once.

A request names a case (every footage link active when it was made) or one recording
(a range of it, or the whole rendition), a purpose from the agency's list and a
recipient. Another person with ``export.approve`` decides it; an approval is valid for
``exports.approval_valid_h`` hours and produces packages once. Every step is an
append-only :class:`ExportDecision` row plus an audit event; status is folded from them.
Packages are written by :class:`ingest.export.Exporter`, unchanged.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NoReturn

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition, Segment
from config.access import ExportSettings
from integrity.errors import (
    Conflict,
    EvidockError,
    InvalidRequest,
    NotApproved,
    NotFound,
    SelfApproval,
)
from records.casebook import Casebook, CaseView
from records.exportbook import (
    STATUSES,
    ExportItem,
    Package,
    RequestView,
    fold_request,
    load_requests,
)
from records.models import ExportDecision, ExportRequest
from records.package import Exporter, parse_offset
from records.permissions import Actor, Gate, P


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _provenance(view: RequestView, actor: Actor) -> dict[str, object]:
    """What every package of an approved request records about it."""
    approval = view.approval
    assert approval is not None
    return {"request_id": view.id, "case_id": view.case_id, "case_number": view.case_number,
            "purpose": view.purpose, "recipient": view.recipient,
            "requested_by": view.requested_by, "requested_at": _iso(view.at),
            "reason": view.reason, "approved_by": approval.actor,
            "approved_at": _iso(approval.at), "valid_until": _iso(approval.valid_until),
            "exported_by": actor.name}


def _seconds(us: int) -> str:
    """µs as an exact decimal number of seconds (what Exporter.export reads)."""
    sign = "-" if us < 0 else ""
    return f"{sign}{abs(us) // 1_000_000}.{abs(us) % 1_000_000:06d}"


def _json(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"


def _remove_partial(out: Path) -> None:
    """``out`` and the temp directories a package export under it may have left."""
    for path in (out, *out.parent.glob(f".{out.name}.partial-*")):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _check_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EvidockError(f"{out} exists and is not an empty directory", path=str(out))


class ExportDesk:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog, exporter: Exporter,
                 settings: ExportSettings, clock: Callable[[], datetime],
                 casebook: Casebook | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 reached: Callable[[str], None] = lambda _point: None) -> None:
        self.catalog, self.gate, self.audit, self.exporter = catalog, gate, audit, exporter
        self.settings, self.clock, self.new_id = settings, clock, new_id
        self.reached = reached  # test-only pause points (crash tests); no-op otherwise
        self.book = casebook or Casebook(catalog=catalog)

    # ------------------------------------------------------------------ access

    def _cases_of(self, view: RequestView) -> tuple[CaseView, ...]:
        """The cases whose unit and label govern a request."""
        if view.case_id is not None:
            return (self.book.case(view.case_id),)
        assert view.recording_id is not None
        return self.book.sensitivity_of_recordings([view.recording_id])[view.recording_id]

    def _require(self, actor: Actor, permission: P, subjects: list[str],
                 cases: Sequence[CaseView]) -> None:
        """The permission, and the unit and label of every governing case (audited)."""
        self.gate.require(actor, permission, subjects=subjects)
        for case in cases:
            self.gate.require(actor, permission, subjects=subjects, unit=case.unit,
                              sensitivity=case.sensitivity)

    @staticmethod
    def _subjects(view: RequestView) -> list[str]:
        scope = f"case:{view.case_id}" if view.case_id else f"recording:{view.recording_id}"
        return [f"export-request:{view.id}", scope]

    @staticmethod
    def _reading(actor: Actor) -> P:
        """Whoever takes part in exports may read requests, with their own permission."""
        return next((p for p in (P.EXPORT_APPROVE, P.EXPORT_RUN) if actor.may(p)),
                    P.EXPORT_REQUEST)

    def _refuse(self, actor: Actor, view: RequestView, why: str) -> NoReturn:
        subjects = self._subjects(view)
        event = self.audit.record(actor=actor.audit_name, action="access.refused",
                                  subjects=subjects,
                                  details={"permission": P.EXPORT_RUN.value, "why": why,
                                           "code": NotApproved.code, "status": view.status},
                                  at=self.clock())
        raise NotApproved(f"refused: {why} (audit event {event.seq})", actor=actor.name,
                          request=view.id, status=view.status, subjects=subjects,
                          audit_seq=event.seq)

    # ------------------------------------------------------------------ footage

    def _span(self, recording_id: str) -> tuple[Recording, int | None]:
        """The recording and the end of its rendition (None: no rendition to package)."""
        with Session(self.catalog.engine) as s:
            rec = s.get(Recording, recording_id)
            if rec is None:
                raise NotFound(f"no recording {recording_id}", recording=recording_id)
            rend = s.exec(select(Rendition).where(Rendition.recording_id == recording_id,
                                                  Rendition.status == "ok")).first()
            last = None if rend is None else s.exec(
                select(Segment).where(Segment.rendition_id == rend.id)
                .order_by(col(Segment.index).desc())).first()
        return rec, None if last is None else last.end_us

    def _recording_item(self, recording_id: str, start: str | None,
                        end: str | None) -> ExportItem:
        rec, whole = self._span(recording_id)
        if whole is None:
            raise NotFound(f"recording {recording_id} has no rendition to export; run "
                           "`evidock process`", recording=recording_id)
        start_us = 0 if start is None else parse_offset(start, rec.camera_start)
        end_us = whole if end is None else parse_offset(end, rec.camera_start)
        if not 0 <= start_us < min(end_us, whole):
            raise InvalidRequest(f"the range [{start}, {end}) is not inside recording "
                                 f"{recording_id} (0 to {whole / 1e6:.3f} s) or is empty",
                                 start_us=start_us, end_us=end_us, recording=recording_id)
        return ExportItem(recording_id, start_us, end_us)

    def _case_items(self, case_id: str, *, made_at: datetime | None,
                    ) -> tuple[list[ExportItem], list[str]]:
        """Links active now (and made by ``made_at``); those without rendition skipped."""
        items: list[ExportItem] = []
        skipped: list[str] = []
        for link in self.book.links(case_id=case_id):
            if not link.active or (made_at is not None and link.at > made_at):
                continue
            _rec, whole = self._span(link.recording_id)
            if whole is None:
                skipped.append(f"link {link.id}: recording {link.recording_id} has no "
                               "rendition (photo, log or not yet processed)")
                continue
            items.append(ExportItem(link.recording_id, link.start_us or 0,
                                    whole if link.end_us is None else link.end_us, link.id))
        return items, skipped

    def _with_items(self, view: RequestView) -> RequestView:
        if view.case_id is None:
            assert view.recording_id is not None
            item = self._recording_item(view.recording_id, view.start, view.end)
            return replace(view, items=(item,))
        items, skipped = self._case_items(view.case_id, made_at=view.at)
        return replace(view, items=tuple(items), skipped=tuple(skipped))

    # ------------------------------------------------------------------ reading

    def _load(self, request_id: str) -> RequestView:
        with Session(self.catalog.engine) as s:
            found = load_requests(s, now=self.clock(), ids=[request_id])
        if not found:
            raise NotFound(f"no export request {request_id}", request=request_id)
        return found[0]

    def show(self, actor: Actor, request_id: str) -> RequestView:
        view = self._load(request_id)
        self._require(actor, self._reading(actor), self._subjects(view), self._cases_of(view))
        self.gate.read(actor, "export.show", self._subjects(view))
        return self._with_items(view)

    def list(self, actor: Actor, *, status: str | None = None,
             case: str | None = None) -> builtins.list[RequestView]:
        """Requests the actor may see (oldest first), by status and/or case."""
        permission = self._reading(actor)
        self.gate.require(actor, permission)
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"unknown status {status!r}; one of {list(STATUSES)}",
                                 status=status)
        case_id = None
        if case is not None:
            found = self.book.case(case)
            self._require(actor, permission, [f"case:{found.id}"], [found])
            case_id = found.id
        with Session(self.catalog.engine) as s:
            views = load_requests(s, now=self.clock(), case_id=case_id)
        views = [v for v in views if (status is None or v.status == status)
                 and all(actor.sees(unit=c.unit, sensitivity=c.sensitivity)
                         for c in self._cases_of(v))]
        self.gate.read(actor, "export.list", [f"export-request:{v.id}" for v in views],
                       {"status": status, "case": case})
        return views

    def package(self, actor: Actor, request_id: str, *,
                read: str = "export.download") -> RequestView:
        """A request that was run, for fetching its packages again (``export.run`` and
        the governing cases' unit and label, as for the run; audited as ``read``)."""
        view = self._load(request_id)
        subjects = self._subjects(view)
        self._require(actor, P.EXPORT_RUN, subjects, self._cases_of(view))
        if view.status != "used":
            raise Conflict(f"export request {view.id} is {view.status}: it has not been "
                           "run, so there is no package to fetch", request=view.id,
                           status=view.status)
        self.gate.read(actor, read, subjects, {"exports": list(view.exports)})
        return view

    # ------------------------------------------------------------------ writing

    def request(self, actor: Actor, *, case: str | None = None, recording: str | None = None,
                start: str | None = None, end: str | None = None, purpose: str,
                recipient: str, reason: str = "") -> RequestView:
        """Ask to take a case's linked footage, or (a range of) a recording, out."""
        if (case is None) == (recording is None):
            raise InvalidRequest("name exactly one of a case or a recording")
        if purpose not in self.settings.purposes:
            raise InvalidRequest(f"unknown purpose {purpose!r}; one of "
                                 f"{list(self.settings.purposes)}", purpose=purpose)
        if not recipient.strip():
            raise InvalidRequest("a recipient is required")
        if case is not None and (start is not None or end is not None):
            raise InvalidRequest("a case request covers the case's linked ranges; --start "
                                 "and --end apply to a recording request", case=case)
        row = ExportRequest(id=self.new_id(), case_id=None, recording_id=recording,
                            start=start, end=end, purpose=purpose, recipient=recipient.strip(),
                            requested_by=actor.name, reason=reason, at=self.clock())
        number = None
        if case is not None:
            found = self.book.case(case)
            row.case_id, number = found.id, found.number
        view = fold_request(row, (), now=row.at, case_number=number)
        self._require(actor, P.EXPORT_REQUEST, self._subjects(view), self._cases_of(view))
        view = self._with_items(view)
        if not view.items:
            raise InvalidRequest(f"case {case} has no linked footage that can be exported",
                                 case=case, skipped=list(view.skipped))
        with self.catalog.transaction() as s:
            s.add(row)
            self.audit.append(s, actor=actor.audit_name, action="export.request",
                              subjects=self._subjects(view),
                              details={"purpose": purpose, "recipient": row.recipient,
                                       "case_number": view.case_number, "start": start,
                                       "end": end, "reason": reason,
                                       "items": [i.to_json() for i in view.items]},
                              at=row.at)
        return view

    def approve(self, actor: Actor, request_id: str, *, reason: str = "") -> RequestView:
        return self._decide(actor, request_id, "approved", reason)

    def reject(self, actor: Actor, request_id: str, *, reason: str) -> RequestView:
        if not reason.strip():
            raise InvalidRequest("a reason is required to reject", request=request_id)
        return self._decide(actor, request_id, "rejected", reason)

    def _decide(self, actor: Actor, request_id: str, decision: str,
                reason: str) -> RequestView:
        view = self._load(request_id)
        subjects = self._subjects(view)
        self._require(actor, P.EXPORT_APPROVE, subjects, self._cases_of(view))
        if actor.name == view.requested_by:
            self.gate.refuse(actor, P.EXPORT_APPROVE, subjects,
                             f"{actor.name} made this request; another person must decide it",
                             error=SelfApproval)
        now = self.clock()
        valid_until = (now + timedelta(hours=self.settings.approval_valid_h)
                       if decision == "approved" else None)
        with self.catalog.transaction() as s:
            status = load_requests(s, now=now, ids=[request_id])[0].status
            if status != "pending":
                raise Conflict(f"export request {request_id} is {status}; only a pending "
                               "request can be decided", request=request_id, status=status)
            s.add(ExportDecision(request_id=request_id, decision=decision, actor=actor.name,
                                 reason=reason, valid_until=valid_until, at=now))
            action = "export.approve" if decision == "approved" else "export.reject"
            self.audit.append(s, actor=actor.audit_name, action=action, subjects=subjects,
                              details={"reason": reason, "valid_until": _iso(valid_until),
                                       "requested_by": view.requested_by}, at=now)
        return self._load(request_id)

    def run(self, actor: Actor, request_id: str, *, out: Path,
            replace_partial: bool = False) -> builtins.list[Package]:
        """Write the packages of an approved, unexpired, unused request (once).

        ``replace_partial``: ``out`` is the caller's own area for this request (the
        service's), where anything found can only be left by a run that never finished
        (a finished run marks the request used), so it is removed instead of refused.
        """
        view = self._load(request_id)
        self._require(actor, P.EXPORT_RUN, self._subjects(view), self._cases_of(view))
        if view.status != "approved":
            self._refuse(actor, view, f"export request {view.id} is {view.status}, not "
                         "approved; nothing leaves without a valid approval")
        if replace_partial:
            _remove_partial(out)
        _check_out(out)
        view = self._with_items(view)
        if not view.items:
            raise Conflict(f"nothing left to export: every link of request {view.id} was "
                           "removed", request=view.id)
        created = not out.exists()
        packages: builtins.list[Package] = []
        try:
            self._write(actor, view, out, packages)
            self.reached("export_written")  # written, not yet recorded as used
            self._used(actor, view, out, packages)
        except BaseException as exc:
            self._discard(actor, view, out, packages, created=created, error=exc)
            raise
        return packages

    def _write(self, actor: Actor, view: RequestView, out: Path,
               packages: builtins.list[Package]) -> None:
        """Each item as a package (a case: OUT/<nn>-<recording>/ and OUT/request.json)."""
        if view.case_id is not None:
            out.mkdir(parents=True, exist_ok=True)
        for n, item in enumerate(view.items, 1):
            dest = out if view.case_id is None else out / f"{n:02d}-{item.recording_id}"
            # Everything request.json says, so `evidock verify` can hold it against the
            # packages' clip.json, which their bag digests cover.
            provenance = {**_provenance(view, actor), "skipped": list(view.skipped),
                          "link_id": item.link_id}
            res = self.exporter.export(item.recording_id, start=_seconds(item.start_us),
                                       end=_seconds(item.end_us), out=dest,
                                       actor=actor.audit_name, purpose=view.purpose,
                                       request_id=view.id, provenance=provenance)
            packages.append(Package(res.path, res.export_id, item, res.segments))
        if view.case_id is None:
            return
        (out / "request.json").write_bytes(_json({
            **_provenance(view, actor), "skipped": list(view.skipped),
            "packages": [{**p.to_json(), "dir": p.path.name} for p in packages]}))

    def _used(self, actor: Actor, view: RequestView, out: Path,
              packages: Sequence[Package]) -> None:
        now = self.clock()
        exports = [p.export_id for p in packages]
        with self.catalog.transaction() as s:
            status = load_requests(s, now=now, ids=[view.id])[0].status
            if status == "used":  # another run finished first
                raise Conflict(f"export request {view.id} was used meanwhile",
                               request=view.id)
            s.add(ExportDecision(request_id=view.id, decision="used", actor=actor.name,
                                 exports=exports, at=now))
            self.audit.append(s, actor=actor.audit_name, action="export.run",
                              subjects=[*self._subjects(view), *sorted(
                                  {f"recording:{p.item.recording_id}" for p in packages})],
                              details={"purpose": view.purpose, "recipient": view.recipient,
                                       "out": str(out), "exports": exports,
                                       "approved_by": getattr(view.approval, "actor", None)},
                              at=now)

    def _discard(self, actor: Actor, view: RequestView, out: Path,
                 packages: Sequence[Package], *, created: bool, error: BaseException) -> None:
        """A run that failed part-way leaves OUT as it found it; the export rows stay and
        an audit event says their packages were removed. The request stays approved."""
        for path in (*(p.path for p in packages), out / "request.json"):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        elif not created:
            out.mkdir(exist_ok=True)
        if packages:
            code = error.code if isinstance(error, EvidockError) else type(error).__name__
            with contextlib.suppress(EvidockError):  # the original error is the one to report
                self.audit.record(actor=actor.audit_name, action="export.discarded",
                                  subjects=self._subjects(view),
                                  details={"exports": [p.export_id for p in packages],
                                           "error": code}, at=self.clock())


__all__ = ["STATUSES", "ExportDesk", "ExportItem", "Package", "RequestView"]
