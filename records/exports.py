"""Export approvals (未经批准不得擅自对外提供): request → approve or reject → run once.

A request names a case (every footage link active when it was made) or one recording
(a range of it, or the whole rendition), a purpose from the agency's list and a
recipient. Another person with ``export.approve`` decides it; an approval is valid for
``exports.approval_valid_h`` hours and produces packages once. Every step is an
append-only :class:`ExportDecision` row plus an audit event; status is folded from them.
A run spends the approval before it writes anything (:mod:`records.exportrun`); an
approved request, or one a dead run left ``running``, can be discarded.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.bindings import bind
from archive.catalog import Catalog
from config.access import ExportSettings
from integrity.errors import (
    Conflict,
    InvalidRequest,
    NotFound,
)
from records.bundle import Bundler
from records.casebook import Casebook, CaseView
from records.exportbook import (
    STATION,
    STATUSES,
    ExportItem,
    Package,
    RequestView,
    fold_request,
    load_requests,
)
from records.exportdeskbase import ExportDeskBase
from records.exportitems import case_items, recording_item
from records.exportoptions import ExportOption
from records.exportrun import ExportRun, check_out, decide, remove_partial
from records.labels import require_items
from records.models import Export, ExportDecision, ExportRequest
from records.package import Exporter
from records.permissions import Actor, Gate, P
from records.redactpackage import ApprovedRedaction
from records.vouch import unvouched


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


class ExportDesk(ExportDeskBase):
    ledger = STATION
    subject = "export-request"

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog, exporter: Exporter,
                 settings: ExportSettings, clock: Callable[[], datetime],
                 casebook: Casebook | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
                 reached: Callable[[str], None] = lambda _point: None,
                 redactions: Callable[[str], ApprovedRedaction] | None = None) -> None:
        self.catalog, self.gate, self.audit, self.exporter = catalog, gate, audit, exporter
        #: redaction id → its approved render (records/redactions.py); raises unless
        #: approved. None: this station makes no redacted packages.
        self.redactions = redactions
        self.settings, self.clock, self.new_id = settings, clock, new_id
        self.reached = reached  # test-only pause points (crash tests); no-op otherwise
        self.book = casebook or Casebook(catalog=catalog)
        if exporter.bundler is None and audit.signer is not None:  # the events, provable
            exporter.bundler = Bundler(audit=audit, keys=exporter.keys, gate=gate,
                                       book=self.book, clock=clock)

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

    def _require_items(self, actor: Actor, permission: P, view: RequestView,
                       recording_ids: Sequence[str] | None = None) -> None:
        """Every item's own labels, whichever case the request names (audited)."""
        ids = [i.recording_id for i in view.items] if recording_ids is None \
            else recording_ids
        require_items(self.gate, self.book, actor, permission, subjects=self._subjects(view),
                      ids=ids, what=f"export request {view.id}")

    def _exported(self, view: RequestView) -> list[str]:
        """The recordings of the packages a run wrote."""
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(Export.recording_id)
                               .where(col(Export.id).in_(list(view.exports)))))

    @staticmethod
    def _subjects(view: RequestView) -> list[str]:
        scope = f"case:{view.case_id}" if view.case_id else f"recording:{view.recording_id}"
        return [f"export-request:{view.id}", scope]

    # ------------------------------------------------------------------ footage

    def _with_items(self, view: RequestView) -> RequestView:
        if view.case_id is None:
            assert view.recording_id is not None
            item = recording_item(self.catalog, view.recording_id, view.start, view.end)
            return replace(view, items=(item,))
        items, skipped = case_items(self.catalog, self.book, view.case_id, made_at=view.at)
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
        self._require_items(actor, P.EXPORT_RUN, view, self._exported(view))
        if view.status != "used":
            raise Conflict(f"export request {view.id} is {view.status}: it has not been "
                           "run, so there is no package to fetch", request=view.id,
                           status=view.status)
        self.gate.read(actor, read, subjects, {"exports": list(view.exports)})
        return view

    # ------------------------------------------------------------------ writing

    def request(self, actor: Actor, *, case: str | None = None, recording: str | None = None,
                start: str | None = None, end: str | None = None, purpose: str,
                recipient: str, reason: str = "", exact: bool = False,
                originals: bool = False, redaction: str | None = None) -> RequestView:
        """Ask to take a case's linked footage, or (a range of) a recording, out;
        ``exact``: nothing outside the ranges; ``originals``: the camera files too;
        ``redaction``: only that approved redacted derivative (what a public purpose,
        信息公开, may take)."""
        if purpose not in self.settings.purposes:
            raise InvalidRequest(f"unknown purpose {purpose!r}; one of "
                                 f"{list(self.settings.purposes)}", purpose=purpose)
        if redaction is not None:
            recording, start, end = self._redacted(
                redaction, case=case, recording=recording, start=start, end=end,
                other=exact or originals)
        elif purpose in self.settings.public_purposes:
            raise InvalidRequest(f"{purpose} makes footage public: it may take only an "
                                 "approved redacted derivative (技术处理后公开); request "
                                 "with --redaction ID", purpose=purpose)
        if (case is None) == (recording is None):
            raise InvalidRequest("name exactly one of a case or a recording")
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
        option = ExportOption(request_id=row.id, exact=exact, originals=originals,
                              redaction_id=redaction, at=row.at) \
            if exact or originals or redaction else None
        view = fold_request(row, (), now=row.at, case_number=number, option=option)
        self._require(actor, P.EXPORT_REQUEST, self._subjects(view), self._cases_of(view))
        view = self._with_items(view)
        self._require_items(actor, P.EXPORT_REQUEST, view)
        if not view.items:
            raise InvalidRequest(f"case {case} has no linked footage that can be exported",
                                 case=case, skipped=list(view.skipped))
        with self.catalog.transaction() as s:
            s.add(row)
            if option is not None:
                s.flush()  # the option names the request
                s.add(option)
            self.audit.append(s, actor=actor.audit_name, action="export.request",
                              subjects=self._subjects(view),
                              details={"purpose": purpose, "recipient": row.recipient,
                                       "case_number": view.case_number, "start": start,
                                       "end": end, "reason": reason, "exact": exact,
                                       "originals": originals, "redaction": redaction,
                                       "items": [i.to_json() for i in view.items]},
                              at=row.at)
        return view

    def _redacted(self, redaction: str, *, case: str | None, recording: str | None,
                  start: str | None, end: str | None,
                  other: bool) -> tuple[str, str, str]:
        """A redaction request's recording and range: the approved redaction's own."""
        if case is not None or recording is not None or start or end or other:
            raise InvalidRequest("a redacted export names only its redaction: the "
                                 "recording and range are the redaction's",
                                 redaction=redaction)
        approved = self._approved_redaction(redaction)
        return (approved.recording_id, f"{approved.start_us / 1e6:.6f}",
                f"{approved.end_us / 1e6:.6f}")

    def _approved_redaction(self, redaction: str) -> ApprovedRedaction:
        if self.redactions is None:
            raise InvalidRequest("this station makes no redacted derivatives",
                                 redaction=redaction)
        return self.redactions(redaction)

    def _decide(self, actor: Actor, request_id: str, decision: str,
                reason: str) -> RequestView:
        view = self._load(request_id)
        subjects = self._subjects(view)
        self._require(actor, P.EXPORT_APPROVE, subjects, self._cases_of(view))
        if view.case_id is not None:  # a recording request's one item is its scope
            self._require_items(actor, P.EXPORT_APPROVE, self._with_items(view))
        decide(catalog=self.catalog, audit=self.audit, gate=self.gate, ledger=STATION,
               view=view, actor=actor, decision=decision, reason=reason,
               valid_h=self.settings.approval_valid_h, subjects=subjects, now=self.clock())
        return self._load(request_id)

    def run(self, actor: Actor, request_id: str, *, out: Path,
            exclusive: bool = False) -> builtins.list[Package]:
        """Write the packages of an approved, unexpired, unused request, once
        (:mod:`records.exportrun`: the approval is spent before anything is written).

        ``exclusive``: the caller holds this request's run lock and ``out`` is its own
        area for it (the service's), so what it finds there was left by a run that died:
        leftovers are removed, and a request such a run left ``running`` is resumed.
        """
        view, resume, redacted = self._runnable(actor, request_id, exclusive=exclusive)
        if exclusive:
            remove_partial(out)
        check_out(out)
        return ExportRun(catalog=self.catalog, audit=self.audit, exporter=self.exporter,
                         clock=self.clock, reached=self.reached, actor=actor, view=view,
                         subjects=self._subjects(view), out=out, book=self.book,
                         redacted=redacted).run(resume=resume)

    def check_run(self, actor: Actor, request_id: str) -> RequestView:
        """What :meth:`run` checks before it spends the approval (refusals audited),
        nothing written: asked before an ``export`` job is queued for a worker."""
        return self._runnable(actor, request_id, exclusive=True)[0]

    def _runnable(self, actor: Actor, request_id: str, *, exclusive: bool,
                  ) -> tuple[RequestView, bool, ApprovedRedaction | None]:
        view = self._load(request_id)
        self._require(actor, P.EXPORT_RUN, self._subjects(view), self._cases_of(view))
        resume = exclusive and view.status == "running"
        if view.status != "approved" and not resume:
            self._refuse(actor, view, f"export request {view.id} is {view.status}, not "
                         "approved; nothing leaves without a valid approval")
        if resume and not self._still_valid(view):
            self._refuse(actor, view, f"export request {view.id} was interrupted and its "
                         "approval has ended since; discard it and request again")
        view = self._with_items(view)
        # Checked again at run time: a label may have reached an item since approval.
        self._require_items(actor, P.EXPORT_RUN, view)
        if forged := unvouched(self.catalog, view):
            self._refuse(actor, view, "no audit event vouches for "
                         f"{'; '.join(forged)}: written into the catalog directly?")
        if not view.items:
            raise Conflict(f"nothing left to export: every link of request {view.id} was "
                           "removed", request=view.id)
        redacted = None if view.redaction_id is None else \
            self._approved_redaction(view.redaction_id)  # still approved, at run time
        return view, resume, redacted

    def _still_valid(self, view: RequestView) -> bool:
        until = getattr(view.approval, "valid_until", None)
        return until is None or self.clock() < until

    def discard(self, actor: Actor, request_id: str, *, reason: str,
                exclusive: bool = False) -> RequestView:
        """End an approved request, or one a dead run left ``running``, for good (the
        requester, or whoever may approve or run it; audited). ``exclusive`` as for
        :meth:`run`: only then can a ``running`` request be known to be dead."""
        view = self._load(request_id)
        subjects = self._subjects(view)
        mine = actor.name == view.requested_by
        permission = next((p for p in (P.EXPORT_APPROVE, P.EXPORT_RUN) if actor.may(p)),
                          P.EXPORT_REQUEST if mine else P.EXPORT_RUN)
        self._require(actor, permission, subjects, self._cases_of(view))
        if not reason.strip():
            raise InvalidRequest("a reason is required to discard", request=request_id)
        allowed = ("approved", "running") if exclusive else ("approved",)
        now = self.clock()
        with self.catalog.transaction() as s:
            status = load_requests(s, now=now, ids=[request_id])[0].status
            if status not in allowed:
                raise Conflict(f"export request {request_id} is {status}; only an approved "
                               "request, or one whose run died, can be discarded",
                               request=request_id, status=status)
            bind(s, self.audit, ExportDecision(request_id=request_id, decision="discarded",
                                               actor=actor.name, reason=reason, at=now),
                 actor=actor.audit_name, action="export.discard",
                              subjects=subjects, details={"reason": reason,
                                                          "was": status}, at=now)
        return self._load(request_id)


__all__ = ["STATUSES", "ExportDesk", "ExportItem", "Package", "RequestView"]
