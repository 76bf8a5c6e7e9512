"""Which checklist stages apply to a case: per-case decisions over the case type's list.

The checklist (``[[coverage.requirements]]``) says which stages a case type must record.
A real case may not have had some of them (a 查封扣押 case without 听证): a clerk of the
case's unit or a legal reviewer marks such a stage 不适用 (not applicable) with a reason,
or marks it applicable again. Rows are append-only; the newest decision per stage is in
force, the older ones are the history. Each decision is an audit event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Field, Session, SQLModel, col, select

from archive.catalog import Catalog
from archive.catalog.types import APPEND_ONLY, utc_field
from config.access import CaseSettings
from integrity.errors import InvalidRequest
from records.casebook import Casebook, CaseView
from records.permissions import Actor, Gate, P


class StageApplicability(SQLModel, table=True):
    """One decision: ``stage`` of case ``case_id`` is (not) applicable, and why."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    stage: str
    applicable: bool
    reason: str
    actor: str
    at: datetime = utc_field()


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A stage's applicability decision as it stands (the newest row of its stage)."""

    stage: str
    applicable: bool
    reason: str
    actor: str
    at: datetime
    seq: int  # the row id: order of decisions

    def to_json(self) -> dict[str, object]:
        return {"stage": self.stage, "applicable": self.applicable, "reason": self.reason,
                "actor": self.actor, "at": self.at.isoformat(), "id": self.seq}


def _decision(row: StageApplicability) -> Decision:
    return Decision(stage=row.stage, applicable=row.applicable, reason=row.reason,
                    actor=row.actor, at=row.at, seq=row.id or 0)


def in_force(rows: Iterable[Decision]) -> dict[str, Decision]:
    """Stage → its newest decision (pure: the fold every reader uses)."""
    out: dict[str, Decision] = {}
    for d in sorted(rows, key=lambda d: d.seq):
        out[d.stage] = d
    return out


def decisions(catalog: Catalog, case_ids: Iterable[str]) -> Mapping[str, tuple[Decision, ...]]:
    """Case → every decision of it, oldest first (the history)."""
    wanted = sorted(set(case_ids))
    out: dict[str, list[Decision]] = {c: [] for c in wanted}
    with Session(catalog.engine) as s:
        for i in range(0, len(wanted), 500):
            query = (select(StageApplicability)
                     .where(col(StageApplicability.case_id).in_(wanted[i:i + 500]))
                     .order_by(col(StageApplicability.id)))
            for row in s.exec(query).all():
                out[row.case_id].append(_decision(row))
    return {c: tuple(v) for c, v in out.items()}


class ApplicabilityDesk:
    """Records and lists stage applicability decisions, permission-checked and audited."""

    def __init__(self, *, catalog: Catalog, gate: Gate, cases: CaseSettings,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.cases, self.clock = catalog, gate, cases, clock
        self.book = Casebook(catalog=catalog)

    def _case(self, actor: Actor, number: str, permission: P) -> CaseView:
        self.gate.require(actor, permission, subjects=[f"case-number:{number}"])
        case = self.book.case(number)
        self.gate.require(actor, permission, subjects=[f"case:{case.id}"],
                          unit=case.unit, sensitivity=case.sensitivity)
        return case

    def decide(self, actor: Actor, *, number: str, stage: str, applicable: bool,
               reason: str) -> Decision:
        """Record that ``stage`` of case ``number`` is (not) applicable; a reason is due."""
        case = self._case(actor, number, P.COVERAGE_STAGE)
        if stage not in self.cases.stages:
            raise InvalidRequest(f"unknown stage {stage!r}; stages: "
                                 f"{', '.join(self.cases.stages)}", stage=stage, case=number)
        if not reason.strip():
            raise InvalidRequest("a reason is required", case=number, stage=stage)
        now = self.clock()
        # The row and its audit event commit together or not at all.
        with self.catalog.transaction() as s:
            row = StageApplicability(case_id=case.id, stage=stage, applicable=applicable,
                                     reason=reason.strip(), actor=actor.name, at=now)
            s.add(row)
            s.flush()
            made = _decision(row)
            self.gate.audit.append(
                s, actor=actor.audit_name, action="case.stage_applicability",
                subjects=[f"case:{case.id}"], at=now,
                details={"case": number, "stage": stage, "applicable": applicable,
                         "reason": made.reason, "id": made.seq})
        return made

    def history(self, actor: Actor, *, number: str) -> tuple[Decision, ...]:
        """Every decision of a case, oldest first (a read, audited)."""
        case = self._case(actor, number, P.COVERAGE_VIEW)
        found = decisions(self.catalog, [case.id])[case.id]
        self.gate.read(actor, "stage_applicability", [f"case:{case.id}"], {"case": number})
        return found


__all__ = ["ApplicabilityDesk", "Decision", "StageApplicability", "decisions", "in_force"]
