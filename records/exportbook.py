"""Reading export requests: the append-only rows folded into status.

:func:`fold_request` and :func:`load_requests` turn ExportRequest/ExportDecision rows
into frozen views without access checks (``case show`` and the export desk use them);
writing and the access rules live in :mod:`records.exports` and :mod:`records.exportrun`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from records.centralexport_models import (
    CentralExportDecision,
    CentralExportOption,
    CentralExportRequest,
)
from records.exportoptions import ExportOption
from records.models import Case, ExportDecision, ExportRequest

STATUSES = ("pending", "approved", "rejected", "expired", "running", "used", "discarded")
#: A decision and the status it leaves: ``running`` spends the approval before anything
#: is written; ``released`` gives it back after a run that wrote nothing outside its
#: staging; ``discarded`` ends a request (approved or left running) for good.
_STATUS_OF = {"released": "approved"}


@dataclass(frozen=True)
class Ledger:
    """Where an export desk keeps its requests and decisions: a station's tables, or
    the center's (same columns, a station's recording instead of the center's own);
    ``action`` prefixes the audit actions (``export.approve``, ``center.export.run``)."""

    request: Any  # type[ExportRequest] | type[CentralExportRequest]
    decision: Any  # type[ExportDecision] | type[CentralExportDecision]
    action: str
    local: bool  # a station's: case numbers and request options apply

    def decided(self, **fields: Any) -> ExportDecision | CentralExportDecision:
        """A new decision row of this ledger."""
        row: ExportDecision | CentralExportDecision = self.decision(**fields)
        return row


STATION = Ledger(ExportRequest, ExportDecision, "export", True)
CENTER = Ledger(CentralExportRequest, CentralExportDecision, "center.export", False)


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@dataclass(frozen=True, slots=True)
class Decision:
    decision: str  # approved | rejected | running | released | used | discarded
    actor: str
    reason: str
    valid_until: datetime | None
    exports: tuple[str, ...]
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"decision": self.decision, "by": self.actor, "reason": self.reason,
                "valid_until": _iso(self.valid_until), "exports": list(self.exports),
                "at": _iso(self.at)}


@dataclass(frozen=True, slots=True)
class ExportItem:
    """One range of one recording that a request takes out, [start_us, end_us)."""

    recording_id: str
    start_us: int
    end_us: int
    link_id: int | None = None  # the case link it comes from

    def to_json(self) -> dict[str, object]:
        return {"recording_id": self.recording_id, "range_us": [self.start_us, self.end_us],
                "link_id": self.link_id}


@dataclass(frozen=True, slots=True)
class RequestView:
    id: str
    case_id: str | None
    case_number: str | None
    recording_id: str | None
    start: str | None
    end: str | None
    purpose: str
    recipient: str
    requested_by: str
    reason: str
    at: datetime
    status: str  # one of STATUSES
    decisions: tuple[Decision, ...]
    items: tuple[ExportItem, ...] = ()  # filled by ExportDesk.show/request/run
    skipped: tuple[str, ...] = ()  # case links that cannot be packaged (no rendition)
    exact: bool = False  # no byte outside the approved ranges (no covering segments)
    originals: bool = False  # the original camera files too
    redaction_id: str | None = None  # only this approved redacted derivative
    station_id: str | None = None  # a center's request: the station's recording

    def _last(self, kind: str) -> Decision | None:
        return next((d for d in reversed(self.decisions) if d.decision == kind), None)

    @property
    def approval(self) -> Decision | None:
        return self._last("approved")

    @property
    def exports(self) -> tuple[str, ...]:
        used = self._last("used")
        return () if used is None else used.exports

    def to_json(self) -> dict[str, object]:
        approval = self.approval
        return {"id": self.id, "status": self.status, "case_id": self.case_id,
                "case_number": self.case_number, "recording_id": self.recording_id,
                "start": self.start, "end": self.end, "purpose": self.purpose,
                "recipient": self.recipient, "requested_by": self.requested_by,
                "reason": self.reason, "at": _iso(self.at),
                "approved_by": None if approval is None else approval.actor,
                "valid_until": None if approval is None else _iso(approval.valid_until),
                "exports": list(self.exports),
                "decisions": [d.to_json() for d in self.decisions],
                "items": [i.to_json() for i in self.items], "skipped": list(self.skipped),
                "exact": self.exact, "originals": self.originals,
                "redaction_id": self.redaction_id,
                **({"station_id": self.station_id} if self.station_id else {})}


@dataclass(frozen=True, slots=True)
class Package:
    """A clip package a run wrote."""

    path: Path
    export_id: str
    item: ExportItem
    segments: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {"dir": str(self.path), "export_id": self.export_id,
                **self.item.to_json(), "segments": list(self.segments)}


def fold_request(row: ExportRequest | CentralExportRequest,
                 decisions: Iterable[ExportDecision | CentralExportDecision], *,
                 now: datetime, case_number: str | None = None,
                 option: ExportOption | CentralExportOption | None = None) -> RequestView:
    """The request as its decisions (in id order) leave it at ``now``."""
    folded = tuple(Decision(d.decision, d.actor, d.reason, d.valid_until,
                            tuple(d.exports), d.at)
                   for d in sorted(decisions, key=lambda d: d.id or 0))
    status = "pending"
    for d in folded:
        status = _STATUS_OF.get(d.decision, d.decision)
    approval = next((d for d in reversed(folded) if d.decision == "approved"), None)
    if status == "approved" and approval and approval.valid_until \
            and now >= approval.valid_until:
        status = "expired"
    return RequestView(id=row.id, case_id=row.case_id, case_number=case_number,
                       recording_id=row.recording_id, start=row.start, end=row.end,
                       purpose=row.purpose, recipient=row.recipient,
                       requested_by=row.requested_by, reason=row.reason, at=row.at,
                       status=status, decisions=folded,
                       exact=bool(option and option.exact),
                       originals=bool(option and option.originals),
                       redaction_id=option.redaction_id if option else None,
                       station_id=getattr(row, "station_id", None))


def load_requests(s: Session, *, now: datetime, case_id: str | None = None,
                  ids: Sequence[str] | None = None,
                  ledger: Ledger = STATION) -> list[RequestView]:
    """Requests (all, of one case, or by id) folded at ``now``, oldest first; no checks."""
    req, dec = ledger.request, ledger.decision
    query = select(req).order_by(col(req.at), col(req.id))
    if case_id is not None:
        query = query.where(req.case_id == case_id)
    if ids is not None:
        query = query.where(col(req.id).in_(list(ids)))
    rows = s.exec(query).all()
    wanted = [r.id for r in rows]
    by_req: dict[str, list[Any]] = {r: [] for r in wanted}
    for d in s.exec(select(dec).where(col(dec.request_id).in_(wanted))):
        by_req[d.request_id].append(d)
    if not ledger.local:  # the center's: only ``originals`` (centralexportoption)
        kept = {o.request_id: o for o in s.exec(select(CentralExportOption).where(
            col(CentralExportOption.request_id).in_(wanted)))}
        return [fold_request(r, by_req[r.id], now=now, option=kept.get(r.id)) for r in rows]
    numbers = dict(s.exec(select(Case.id, Case.number).where(
        col(Case.id).in_([r.case_id for r in rows if r.case_id]))).all())
    options = {o.request_id: o for o in s.exec(
        select(ExportOption).where(col(ExportOption.request_id).in_(wanted)))}
    return [fold_request(r, by_req[r.id], now=now, case_number=numbers.get(r.case_id or ""),
                         option=options.get(r.id)) for r in rows]


__all__ = ["CENTER", "STATION", "STATUSES", "Decision", "ExportItem", "Ledger", "Package",
           "RequestView", "fold_request", "load_requests"]
