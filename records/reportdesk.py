"""Making signed reports for people: who may, what goes in, the signature, the audit.

The coverage report needs ``coverage.view`` on the case (as `evidock coverage` does);
the chain-of-custody report needs ``report.custody`` and sight of the footage (every
case it is linked to). Each report is made against the signed audit tree head current
when it is made (signed now if the log grew): events after it are not in the report.
Making one is an audited read (``read.report.coverage`` / ``read.report.custody``) whose
details carry the PDF's digests, so the log says which bytes were handed out.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog, Recording
from archive.keystore import StationKeys
from config.access import CoverageSettings
from integrity.errors import InvalidRequest, NotFound
from integrity.reportsign import sign_report, statement
from records.casebook import Casebook
from records.coverage_load import CoverageDesk
from records.custody import CustodyFacts, custody_doc, load_events, load_items, visible_events
from records.dossier import require_recording
from records.models import Export, ExportRequest
from records.pdfdoc import ReportDoc, render_pdf
from records.permissions import Actor, Gate, P
from records.reports import Made, SignedReport, coverage_doc
from records.reviews import load_reviews


class ReportDesk:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog, keys: StationKeys,
                 coverage: CoverageSettings, station_id: str, zone: Any,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.audit, self.keys = catalog, gate, audit, keys
        self.coverage_settings, self.station_id, self.zone = coverage, station_id, zone
        self.clock = clock
        self.book = Casebook(catalog=catalog)

    def _made(self, actor: Actor) -> Made:
        now = self.clock()
        head = self.audit.current_head(at=now).to_dict()
        return Made(at=now, by=actor.name, station_id=self.station_id, head=head,
                    zone=self.zone)

    def _sign(self, actor: Actor, doc: ReportDoc, *, kind: str, subjects: list[str],
              made: Made) -> SignedReport:
        pdf = render_pdf(doc)
        stmt = statement(pdf, report=kind, subjects=subjects, made_at=made.at.isoformat(),
                         made_by=actor.audit_name, station_id=self.station_id,
                         audit_head=made.head)
        signature = sign_report(stmt, self.keys.load())
        self.gate.read(actor, f"report.{kind}", subjects,
                       {"size": stmt["size"], "sha256": stmt["sha256"],
                        "blake3": stmt["blake3"], "audit_head_size": made.head["size"]})
        return SignedReport(pdf=pdf, signature=signature, statement=stmt)

    # ------------------------------------------------------------------ coverage

    def coverage(self, actor: Actor, number: str) -> SignedReport:
        """The signed coverage report of one case (refused, audited, if hidden)."""
        desk = CoverageDesk(catalog=self.catalog, gate=self.gate,
                            settings=self.coverage_settings, clock=self.clock)
        report = desk.run(actor, number=number).to_json()
        cases: list[dict[str, Any]] = report["cases"]  # type: ignore[assignment]
        case = cases[0]
        made = self._made(actor)
        doc = coverage_doc(case, report.get("settings", {}),  # type: ignore[arg-type]
                           load_reviews(self.catalog, str(case["case_id"])), made)
        return self._sign(actor, doc, kind="coverage", subjects=[f"case:{case['case_id']}"],
                          made=made)

    # ------------------------------------------------------------------ custody

    def custody(self, actor: Actor, *, recording: str | None = None,
                export: str | None = None, case: str | None = None) -> SignedReport:
        """The signed chain-of-custody report of one recording, an export request's
        recordings or a case's linked recordings (those the reader may see)."""
        if sum(x is not None for x in (recording, export, case)) != 1:
            raise InvalidRequest("name one recording, or --export ID, or --case NUMBER")
        if recording is not None:
            scope, ids, subjects = self._recording(actor, recording)
        elif export is not None:
            scope, ids, subjects = self._export(actor, export)
        else:
            assert case is not None
            scope, ids, subjects = self._case(actor, case)
        made = self._made(actor)
        wanted = [*subjects, *(f"recording:{r}" for r in ids), *ids]
        events, hidden = visible_events(self.book, actor, load_events(
            self.catalog, wanted, upto=int(made.head["size"])))
        facts = CustodyFacts(scope=scope, items=load_items(self.catalog, self.book, actor, ids),
                             events=events, hidden_events=hidden)
        return self._sign(actor, custody_doc(facts, made), kind="custody",
                          subjects=[*subjects, *(f"recording:{r}" for r in ids)], made=made)

    def _recording(self, actor: Actor, rid: str) -> tuple[str, list[str], list[str]]:
        with Session(self.catalog.engine) as s:
            if s.get(Recording, rid) is None:
                raise NotFound(f"no recording {rid}", recording=rid)
        cases = self.book.sensitivity_of_recordings([rid])[rid]
        require_recording(self.gate, actor, P.REPORT_CUSTODY, rid, cases)
        return f"录像 / recording {rid}", [rid], []

    def _visible(self, actor: Actor, ids: list[str]) -> list[str]:
        cases = self.book.sensitivity_of_recordings(ids)
        return [r for r in ids if actor.sees_every(cases[r])]

    def _case(self, actor: Actor, key: str) -> tuple[str, list[str], list[str]]:
        found = self.book.case(key)
        subjects = [f"case:{found.id}"]
        self.gate.require(actor, P.REPORT_CUSTODY, subjects=subjects, unit=found.unit,
                          sensitivity=found.sensitivity)
        ids = list(dict.fromkeys(x.recording_id for x in self.book.links(case_id=found.id)
                                 if x.active))
        shown = self._visible(actor, ids)
        left = f"（另 {len(ids) - len(shown)} 条不可见 / hidden）" if len(shown) < len(ids) else ""
        return f"案件 / case {found.number}{left}", shown, subjects

    def _export(self, actor: Actor, request_id: str) -> tuple[str, list[str], list[str]]:
        with Session(self.catalog.engine) as s:
            req = s.get(ExportRequest, request_id)
            made = list(s.exec(select(Export.recording_id)
                               .where(col(Export.request_id) == request_id)))
        if req is None:
            raise NotFound(f"no export request {request_id}", request=request_id)
        subjects = [f"export-request:{request_id}"]
        if req.case_id is not None:
            _, linked, case_subjects = self._case(actor, req.case_id)
            ids = list(dict.fromkeys(made)) or linked
            subjects += case_subjects
        else:
            assert req.recording_id is not None
            self._recording(actor, req.recording_id)
            ids = [req.recording_id]
        return f"导出申请 / export request {request_id}", self._visible(actor, ids), subjects


__all__ = ["ReportDesk"]
