"""What a station's export desk (:mod:`records.exports`) and the center's
(:mod:`records.centralexports`) share: who may read requests, deciding one (a rejection
needs a reason), an audited refusal to run, and the lifecycle of the export area a run
writes into.

Each desk keeps its own checks in ``_decide``; the ledger and the request's subject
prefix say whose requests the area's entries belong to.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar, NoReturn

from sqlmodel import Session

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from integrity.errors import InvalidRequest, NotApproved
from records.exportarea import AreaState, ExportArea, Removed
from records.exportbook import Ledger, RequestView, load_requests
from records.permissions import Actor, P


class ExportDeskBase:
    #: Where the desk's requests and decisions are kept.
    ledger: ClassVar[Ledger]
    #: The audit subject of a request: ``{subject}:{request id}``.
    subject: ClassVar[str]
    catalog: Catalog
    audit: AuditLog
    clock: Callable[[], datetime]

    @staticmethod
    def _subjects(view: RequestView) -> list[str]:
        raise NotImplementedError  # the request's audit subjects, each desk its own

    @staticmethod
    def _reading(actor: Actor) -> P:
        """Whoever takes part in exports may read requests, with their own permission."""
        return next((p for p in (P.EXPORT_APPROVE, P.EXPORT_RUN) if actor.may(p)),
                    P.EXPORT_REQUEST)

    def _refuse(self, actor: Actor, view: RequestView, why: str) -> NoReturn:
        """A run or a fetch refused for the request's status: audited, then raised."""
        subjects = self._subjects(view)
        event = self.audit.record(actor=actor.audit_name, action="access.refused",
                                  subjects=subjects,
                                  details={"permission": P.EXPORT_RUN.value, "why": why,
                                           "code": NotApproved.code, "status": view.status},
                                  at=self.clock())
        raise NotApproved(f"refused: {why} (audit event {event.seq})", actor=actor.name,
                          request=view.id, status=view.status, subjects=subjects,
                          audit_seq=event.seq)

    def approve(self, actor: Actor, request_id: str, *, reason: str = "") -> RequestView:
        return self._decide(actor, request_id, "approved", reason)

    def reject(self, actor: Actor, request_id: str, *, reason: str) -> RequestView:
        if not reason.strip():
            raise InvalidRequest("a reason is required to reject", request=request_id)
        return self._decide(actor, request_id, "rejected", reason)

    def _decide(self, actor: Actor, request_id: str, decision: str,
                reason: str) -> RequestView:
        raise NotImplementedError  # each desk checks its own scope first

    def tidy(self, area: ExportArea) -> builtins.list[Removed]:
        """The export area's lifecycle (:meth:`ExportArea.sweep`), each removal audited
        as the service's own act."""
        removed = area.sweep(self._area_states, now=self.clock())
        for r in removed:
            self.audit.record(actor="system:service",
                              action=f"{self.ledger.action}.area.removed",
                              subjects=[f"{self.subject}:{r.request_id}"],
                              details={"entry": r.name, "why": r.why}, at=self.clock())
        return removed

    def _area_states(self, ids: Sequence[str]) -> dict[str, AreaState]:
        with Session(self.catalog.engine) as s:
            views = load_requests(s, now=self.clock(), ids=ids, ledger=self.ledger)
        return {v.id: AreaState(v.status, getattr(v.approval, "valid_until", None))
                for v in views}


__all__ = ["ExportDeskBase"]
