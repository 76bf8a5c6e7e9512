"""Deletion steps as views: the open deletion of each recording and what a run did.

``RetentionAction`` rows are append-only; a deletion *cycle* starts with a ``scheduled``
row and ends with ``cancelled`` or ``executed``; ``approved`` rows in between are its
approvals. :func:`fold_actions` is pure; the executor loads the rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from integrity.codes import Code
from records.persons import people
from retention.models import RetentionAction
from retention.policy import Decision

# Run outcome codes.
I_RETENTION_DELETED = Code.I_RETENTION_DELETED
I_RETENTION_WOULD_DELETE = Code.I_RETENTION_WOULD_DELETE  # dry run
I_RETENTION_CANCELLED = Code.I_RETENTION_CANCELLED  # re-planned at run time: no longer due
I_RETENTION_NOT_DUE = Code.I_RETENTION_NOT_DUE  # grace period not over
I_RETENTION_AWAITING_APPROVAL = Code.I_RETENTION_AWAITING_APPROVAL
# due and approved, but not yet two distinct people (the scheduler never counts)
I_RETENTION_AWAITING_SECOND_PERSON = Code.I_RETENTION_AWAITING_SECOND_PERSON
I_RETENTION_RACED = Code.I_RETENTION_RACED  # another run or approval changed it meanwhile
E_RETENTION_UNVERIFIED = Code.E_RETENTION_UNVERIFIED  # a blob is missing or not what it says

VERBS = {"scheduled": "schedule", "approved": "approve", "cancelled": "cancel",
         "executed": "execute"}


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@dataclass(frozen=True, slots=True)
class PendingView:
    """A scheduled deletion not yet cancelled or executed."""

    action_id: int  # the "scheduled" row
    recording_id: str
    rule: str
    reason: str
    due_at: datetime
    scheduled_by: str
    scheduled_at: datetime
    approvals: tuple[str, ...] = ()
    #: those of ``approvals`` given at the center (a step carrying its decision id)
    center_approvals: tuple[str, ...] = ()

    def due(self, now: datetime) -> bool:
        return self.due_at <= now

    @property
    def approved(self) -> bool:
        return bool(self.approvals)

    def people(self, runner: str | None = None) -> tuple[str, ...]:
        """The distinct people behind this deletion (and ``runner``): a scheduler that
        is ``system:*`` is nobody, and one user counts once whatever roles they hold."""
        return people((self.scheduled_by, *self.approvals, *([runner] if runner else [])))

    def to_json(self, now: datetime | None = None) -> dict[str, object]:
        out: dict[str, object] = {
            "recording_id": self.recording_id, "rule": self.rule, "reason": self.reason,
            "due_at": _iso(self.due_at), "scheduled_by": self.scheduled_by,
            "scheduled_at": _iso(self.scheduled_at), "approvals": list(self.approvals),
            "people": list(self.people())}
        if now is not None:
            out["due"] = self.due(now)
        return out


def fold_actions(rows: Iterable[RetentionAction]) -> dict[str, PendingView]:
    """Recording id → its open deletion (rows folded in id order)."""
    open_: dict[str, PendingView] = {}
    for row in sorted(rows, key=lambda r: r.id or 0):
        rid = row.recording_id
        if row.step == "scheduled" and row.due_at is not None:
            open_[rid] = PendingView(action_id=row.id or 0, recording_id=rid, rule=row.rule,
                                     reason=row.reason, due_at=row.due_at,
                                     scheduled_by=row.actor, scheduled_at=row.at)
        elif row.step == "approved" and rid in open_:
            view = open_[rid]
            if row.actor not in view.approvals:
                view = open_[rid] = replace(view, approvals=(*view.approvals, row.actor))
            if row.decision is not None and row.actor not in view.center_approvals:
                open_[rid] = replace(view, center_approvals=(*view.center_approvals,
                                                             row.actor))
        elif row.step in ("cancelled", "executed"):
            open_.pop(rid, None)
    return open_


@dataclass(frozen=True)
class PlanReport:
    now: datetime
    decisions: tuple[Decision, ...]
    summary: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"now": _iso(self.now), "summary": self.summary,
                "decisions": [{"recording_id": d.recording_id, "action": d.action,
                               "rule": d.rule, "reason": d.reason,
                               "retain_until": _iso(d.retain_until)}
                              for d in self.decisions]}


@dataclass(frozen=True)
class Change:
    """One step ``schedule`` wrote: a deletion scheduled or cancelled."""

    recording_id: str
    step: str  # scheduled | cancelled
    rule: str
    reason: str
    due_at: datetime

    def to_json(self) -> dict[str, object]:
        return {"recording_id": self.recording_id, "step": self.step, "rule": self.rule,
                "reason": self.reason, "due_at": _iso(self.due_at)}


@dataclass(frozen=True)
class ScheduleReport:
    now: datetime
    changes: tuple[Change, ...]
    open: int  # deletions pending after this run

    def to_dict(self) -> dict[str, Any]:
        return {"now": _iso(self.now), "open": self.open,
                "scheduled": sum(c.step == "scheduled" for c in self.changes),
                "cancelled": sum(c.step == "cancelled" for c in self.changes),
                "changes": [c.to_json() for c in self.changes]}


@dataclass(frozen=True)
class Outcome:
    """What a run did (or, dry, would do) with one pending deletion."""

    recording_id: str
    status: str  # deleted | would_delete | cancelled | blocked | waiting | raced
    code: str
    reason: str
    removed: tuple[str, ...] = ()  # blobs removed (or that would be)
    kept: tuple[str, ...] = ()  # blobs kept: something live still names them
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"recording_id": self.recording_id, "status": self.status, "code": self.code,
                "reason": self.reason, "removed": list(self.removed), "kept": list(self.kept),
                **({"details": self.details} if self.details else {})}


@dataclass(frozen=True)
class RunReport:
    now: datetime
    dry_run: bool
    outcomes: tuple[Outcome, ...]
    swept: tuple[str, ...] = ()  # tombstoned blobs left by an earlier crash, removed now

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("blocked") else 0

    def to_dict(self) -> dict[str, Any]:
        statuses = ("deleted", "would_delete", "cancelled", "blocked", "waiting", "raced")
        return {"now": _iso(self.now), "dry_run": self.dry_run,
                "counts": {s: self.count(s) for s in statuses}, "swept": list(self.swept),
                "outcomes": [o.to_json() for o in self.outcomes]}


__all__ = ["E_RETENTION_UNVERIFIED", "I_RETENTION_AWAITING_APPROVAL",
           "I_RETENTION_AWAITING_SECOND_PERSON", "I_RETENTION_CANCELLED",
           "I_RETENTION_DELETED", "I_RETENTION_NOT_DUE", "I_RETENTION_RACED",
           "I_RETENTION_WOULD_DELETE", "VERBS", "Change", "Outcome", "PendingView",
           "PlanReport", "RunReport", "ScheduleReport", "fold_actions"]
