"""Reading redactions: their rows, vouched for by their audit events, folded into views.

A redaction's status is folded from its steps, oldest first: a plan makes it
``requested`` (nothing rendered of that plan yet), a render ``rendered``, an approval
``approved`` (final: nothing more may be done to it), a rejection ``rejected`` (a new
plan may follow); once retention has deleted its recording (a tombstone names it) it
is ``deleted`` whatever its steps, its blobs being gone with the recording's content
(:func:`redaction_content`, removed by retention/executor.py). A row no audit event
vouches for (written into the catalog behind evidock's back) is left out, as for review
decisions, and ``audit verify`` reports it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from archive.bindings import vouched
from archive.catalog import Catalog
from archive.catalog.models import Tombstone
from integrity.errors import NotFound
from integrity.redaction import LABEL, Plan
from records.redaction_model import Redaction, RedactionStep

STATUSES = ("requested", "rendered", "approved", "rejected", "deleted")

#: The role in a tombstone of each blob a redaction step names, by the step's column.
ROLES = {"plan_blake3": "redaction-plan", "output_blake3": "redaction-output",
         "statement_blake3": "redaction-statement",
         "signature_blake3": "redaction-signature"}


@dataclass(frozen=True, slots=True)
class StepView:
    id: int
    kind: str
    actor: str
    at: datetime
    plan_blake3: str | None
    output_blake3: str | None
    statement_blake3: str | None
    signature_blake3: str | None
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "kind": self.kind, "by": self.actor,
                "at": self.at.isoformat(), "plan_blake3": self.plan_blake3,
                "output_blake3": self.output_blake3,
                "statement_blake3": self.statement_blake3,
                "signature_blake3": self.signature_blake3, "reason": self.reason}


def _step(row: RedactionStep) -> StepView:
    return StepView(id=row.id or 0, kind=row.kind, actor=row.actor, at=row.at,
                    plan_blake3=row.plan_blake3, output_blake3=row.output_blake3,
                    statement_blake3=row.statement_blake3,
                    signature_blake3=row.signature_blake3, reason=row.reason)


@dataclass(frozen=True, slots=True)
class RedactionView:
    id: str
    recording_id: str
    rendition_id: str
    start_us: int
    end_us: int
    reason: str
    requested_by: str
    created_at: datetime
    steps: tuple[StepView, ...]
    #: Retention deleted the recording (and this redaction's blobs) under this tombstone.
    tombstone: int | None = None
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.tombstone is not None

    @property
    def plan_step(self) -> StepView | None:
        """The plan in force: the latest."""
        return next((s for s in reversed(self.steps) if s.kind == "plan"), None)

    @property
    def render_step(self) -> StepView | None:
        """The render of the plan in force (None: that plan is not rendered yet)."""
        plan = self.plan_step
        for s in reversed(self.steps):
            if s is plan:
                return None
            if s.kind == "render":
                return s
        return None

    @property
    def status(self) -> str:
        if self.deleted:
            return "deleted"
        state = "requested"
        for s in self.steps:
            state = {"plan": "requested", "render": "rendered", "approve": "approved",
                     "reject": "rejected"}.get(s.kind, state)
        return state

    def to_json(self, plan: Plan | None = None) -> dict[str, Any]:
        render = self.render_step
        return {"id": self.id, "label": LABEL, "recording_id": self.recording_id,
                "rendition_id": self.rendition_id,
                "range_us": [self.start_us, self.end_us], "reason": self.reason,
                "requested_by": self.requested_by,
                "created_at": self.created_at.isoformat(), "status": self.status,
                "plan": None if plan is None else summary(plan),
                "render": None if render is None else render.to_json(),
                "steps": [s.to_json() for s in self.steps],
                "deleted": None if self.tombstone is None else {
                    "tombstone": self.tombstone,
                    "at": self.deleted_at.isoformat() if self.deleted_at else None,
                    "note": "deleted by retention with its recording: the redacted "
                            "file, plans and statements are gone"}}


def summary(plan: Plan) -> dict[str, Any]:
    """What a reader checks before approving: every region and audio range."""
    return {"style": plan.style, "frame": [plan.width, plan.height],
            "detector": dict(plan.detector) if plan.detector else None,
            "tracks": [{"id": t.id, "source": t.source, "samples": len(t.samples),
                        "from_us": t.samples[0][0], "to_us": t.samples[-1][0]}
                       for t in plan.tracks],
            "boxes": [{"id": f.id, "box": f.box.to_list(),
                       "range_us": [f.start_us, f.end_us]} for f in plan.boxes],
            "audio": [{"kind": a.kind, "range_us": [a.start_us, a.end_us]}
                      for a in plan.audio]}


def load(catalog: Catalog, ids: Sequence[str] | None = None) -> list[RedactionView]:
    """Redactions (all, or these ids) with their vouched steps, oldest first."""
    with Session(catalog.engine) as s:
        query = select(Redaction).order_by(col(Redaction.created_at), col(Redaction.id))
        if ids is not None:
            query = query.where(col(Redaction.id).in_(list(ids)))
        rows = vouched(s, s.exec(query).all())
        steps = vouched(s, s.exec(select(RedactionStep).where(
            col(RedactionStep.redaction_id).in_([r.id for r in rows]))
            .order_by(col(RedactionStep.id))).all()) if rows else []
        tombs = _tombstones(s, {r.recording_id for r in rows})
    by: dict[str, list[StepView]] = {r.id: [] for r in rows}
    for step in steps:
        by[step.redaction_id].append(_step(step))
    return [_view(r, by[r.id], tombs.get(r.recording_id)) for r in rows]


def _view(r: Redaction, steps: list[StepView],
          tomb: tuple[int, datetime] | None) -> RedactionView:
    return RedactionView(id=r.id, recording_id=r.recording_id, rendition_id=r.rendition_id,
                         start_us=r.start_us, end_us=r.end_us, reason=r.reason,
                         requested_by=r.requested_by, created_at=r.created_at,
                         steps=tuple(steps), tombstone=tomb[0] if tomb else None,
                         deleted_at=tomb[1] if tomb else None)


def _tombstones(s: Session, recordings: set[str]) -> dict[str, tuple[int, datetime]]:
    """recording id → (id, time) of the first tombstone naming it."""
    if not recordings:
        return {}
    found: dict[str, tuple[int, datetime]] = {}
    for t in s.exec(select(Tombstone).where(col(Tombstone.recording_id).in_(list(recordings)))
                    .order_by(col(Tombstone.id))):
        found.setdefault(t.recording_id, (t.id or 0, t.at))
    return found


def redaction_content(s: Session, recording_id: str) -> list[tuple[str, str]]:
    """``(blob, role)`` of every blob the vouched steps of the recording's redactions
    name (roles in :data:`ROLES`), for retention to remove with the recording. A row
    no audit event vouches for adds nothing: a forged row never makes anything go."""
    heads = vouched(s, s.exec(select(Redaction)
                              .where(Redaction.recording_id == recording_id)).all())
    if not heads:
        return []
    steps = vouched(s, s.exec(select(RedactionStep).where(
        col(RedactionStep.redaction_id).in_([h.id for h in heads]))
        .order_by(col(RedactionStep.id))).all())
    first: dict[str, str] = {}
    for step in steps:
        for column, role in ROLES.items():
            b3 = getattr(step, column)
            if b3:
                first.setdefault(b3, role)
    return list(first.items())


def redaction_owners(s: Session, blobs: Collection[str]) -> set[tuple[str, str]]:
    """``(blob, recording_id)`` for every redaction step row naming one of ``blobs``
    (vouched or not: a row can keep a blob longer, never make it go)."""
    wanted = list(set(blobs))
    if not wanted:
        return set()
    out: set[tuple[str, str]] = set()
    for column in ROLES:
        field = getattr(RedactionStep, column)
        out |= {(b, r) for b, r in s.exec(
            select(field, Redaction.recording_id)
            .join(Redaction, col(Redaction.id) == col(RedactionStep.redaction_id))
            .where(col(field).in_(wanted)))}
    return out


def load_one(catalog: Catalog, redaction_id: str) -> RedactionView:
    found = load(catalog, [redaction_id])
    if not found:
        raise NotFound(f"no redaction {redaction_id}", redaction=redaction_id)
    return found[0]


__all__ = ["ROLES", "STATUSES", "RedactionView", "StepView", "load", "load_one",
           "redaction_content", "redaction_owners", "summary"]
