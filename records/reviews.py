"""Review decisions (法制审核): a legal reviewer's 同意 / 暂不同意 / 不同意 on a case.

Append-only: a later decision is a new row, never an edit, so the history is the
record; the current decision is the latest row. A decision carries authority, so it is
bound to its audit event (:mod:`archive.bindings`: the event carries the row's digest,
a binding row names the event); a row without its event is not believed (left out
here, reported by ``audit verify``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, col, select

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched
from archive.bindings_model import Binding
from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, table_of, utc_field
from integrity.errors import InvalidRequest, SelfApproval
from records.casebook import Casebook, CaseView, LinkView
from records.models import CaseAttachment, CaseStage
from records.permissions import Actor, Gate, P


class CaseReview(SQLModel, table=True):
    """One review decision on a case, with its reason, by a reviewer."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    decision: str  # 同意 | 暂不同意 | 不同意
    reason: str
    actor: str
    at: datetime = utc_field()


DECISIONS = ("同意", "暂不同意", "不同意")


@dataclass(frozen=True, slots=True)
class ReviewView:
    id: int
    case_id: str
    decision: str
    reason: str
    actor: str
    at: datetime
    audit_seq: int

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "case_id": self.case_id, "decision": self.decision,
                "reason": self.reason, "by": self.actor, "at": self.at.isoformat(),
                "audit_seq": self.audit_seq}


def _view(row: CaseReview, audit_seq: int) -> ReviewView:
    return ReviewView(id=row.id or 0, case_id=row.case_id, decision=row.decision,
                      reason=row.reason, actor=row.actor, at=row.at, audit_seq=audit_seq)


def load_reviews(catalog: Catalog, case_id: str) -> tuple[ReviewView, ...]:
    """Every decision on a case its audit event vouches for, oldest first (the last is
    in force)."""
    with Session(catalog.engine) as s:
        rows = vouched(s, s.exec(select(CaseReview).where(CaseReview.case_id == case_id)
                                 .order_by(col(CaseReview.id))).all())
        seqs = {b.row_id: b.audit_seq for b in s.exec(select(Binding).where(
            Binding.table_name == table_of(CaseReview).name,
            col(Binding.row_id).in_([str(r.id) for r in rows])))}
    return tuple(_view(r, seqs[str(r.id)]) for r in rows)


def case_clerks(case: CaseView, *, links: Iterable[LinkView],
                stages: Iterable[CaseStage], attachments: Iterable[CaseAttachment],
                ) -> frozenset[str]:
    """Whose work on the case a review judges: who created it, linked or unlinked its
    footage, recorded its stage times or attached its documents. None of them may
    review it (法制审核 is by someone other than the case-handling clerk)."""
    names = {case.created_by}
    for link in links:
        names.add(link.actor)
        if link.removed is not None:
            names.add(link.removed.actor)
    names.update(x.actor for x in stages)
    names.update(x.actor for x in attachments)
    return frozenset(names)


class ReviewDesk:
    """Records review decisions and lists them; every write and read is audited."""

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock
        self.book = Casebook(catalog=catalog)

    def decide(self, actor: Actor, key: str, *, decision: str, reason: str) -> ReviewView:
        """Record ``decision`` on case ``key``: refused (and audited) unless the actor
        holds case.review, sees the case, and did none of the case's clerk work."""
        if decision not in DECISIONS:
            raise InvalidRequest(f"unknown decision {decision!r}; one of {list(DECISIONS)}",
                                 decision=decision)
        if not reason.strip():
            raise InvalidRequest("a review decision needs a reason (--reason)")
        case = self.book.case(key)
        subjects = [f"case:{case.id}"]
        self.gate.require(actor, P.CASE_REVIEW, subjects=subjects, unit=case.unit,
                          sensitivity=case.sensitivity)
        clerks = case_clerks(case, links=self.book.links(case_id=case.id),
                             stages=self.book.stages(case.id),
                             attachments=self.book.attachments(case.id))
        if actor.name in clerks:
            self.gate.refuse(actor, P.CASE_REVIEW, subjects,
                             f"{actor.name} worked on case {case.number} (created it, "
                             "linked footage, recorded stages or attached documents) and "
                             "may not review it", error=SelfApproval)
        now = self.clock()
        row = CaseReview(case_id=case.id, decision=decision, reason=reason.strip(),
                         actor=actor.name, at=now)
        with self.catalog.transaction() as s:
            event = bind(s, self.audit, row, actor=actor.audit_name, action="case.review",
                         subjects=subjects, details={"number": case.number,
                                                     "decision": decision,
                                                     "reason": reason.strip()}, at=now)
            return _view(row, event.seq)

    def list(self, actor: Actor, key: str) -> tuple[CaseView, tuple[ReviewView, ...]]:
        """The case's decisions, for whoever may see the case (the read is audited)."""
        case = self.book.case(key)
        subjects = [f"case:{case.id}"]
        self.gate.require(actor, P.CASE_VIEW, subjects=subjects, unit=case.unit,
                          sensitivity=case.sensitivity)
        reviews = load_reviews(self.catalog, case.id)
        self.gate.read(actor, "case.reviews", subjects,
                       {"number": case.number, "reviews": len(reviews)})
        return case, reviews


__all__ = ["DECISIONS", "CaseReview", "ReviewDesk", "ReviewView", "case_clerks",
           "load_reviews"]
