"""A station carrying out what its center decided: holds placed there, deletions
approved or rejected there.

``pull`` is one exchange with the center (``evidock retention pull``, and the
scheduler's ``witness`` job after each push): with ``[center] retention = "center"`` the
station reports its open deletions; it takes back the center's holds on its records and
the decisions on what it reported, and writes each as its own append-only row, bound to
a station audit event naming the center's id and the people there:

- a center hold becomes a station :class:`Hold` whose ``source`` is the center hold's id
  (unique: pulling twice places one hold), placed by the person who placed it at the
  center; its release at the center becomes a :class:`HoldRelease` by the person who
  released it there. Only the center releases it (the hold desk refuses locally).
- a decision becomes an ``approved`` or ``cancelled`` step whose ``decision`` is the
  center decision's id, by the center's decider, and only on the very deletion the
  center decided (the same ``scheduled`` step still open); the two-person rule is checked
  here again. The executor still re-plans, re-hashes and tombstones at run time: an
  approval never deletes what the station's planner keeps.

What the center sends is checked for shape and for naming this station; a hold on a
case or recording this station does not have (yet) is reported and tried again at the
next pull.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched
from archive.catalog import Catalog, Recording
from archive.tombstones import tombstoned_recordings
from archive.witness.center import CenterClient
from config.witness import CenterSettings
from integrity.errors import CenterUnavailable, ConfigError
from records.models import Case
from records.permissions import Actor, Gate, P
from records.persons import is_person
from retention.actions import VERBS, PendingView, fold_actions
from retention.center_deletions import MAX_REPORTED, VERDICTS
from retention.holds import SCOPES
from retention.models import Hold, HoldRelease, RetentionAction

Doc = dict[str, Any]


def report_of(view: PendingView) -> Doc:
    """What the center is told of an open deletion."""
    return {"action_id": view.action_id, "recording_id": view.recording_id,
            "rule": view.rule, "reason": view.reason, "due_at": view.due_at.isoformat(),
            "scheduled_by": view.scheduled_by, "scheduled_at": view.scheduled_at.isoformat()}


def _checked(doc: object, station: str, fields: Mapping[str, Any]) -> Doc:
    """A center document of the expected shape, naming this station."""
    if not isinstance(doc, dict) or doc.get("station_id") != station or not all(
            isinstance(doc.get(k), t) for k, t in fields.items()):
        raise CenterUnavailable(f"the center sent a malformed hold or decision: {doc!r}"[:300])
    return doc


_HOLD: dict[str, Any] = {"id": str, "scope": str, "target": str, "reason": str, "placed_by": str,
         "placed_at": str, "active": bool, "released_by": (str, type(None)),
         "release_reason": (str, type(None))}
_DECISION: dict[str, Any] = {"id": str, "action_id": int, "verdict": str, "reason": str,
                             "decided_by": str, "at": str}


class CenterSync:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog, station_id: str,
                 center: CenterSettings, client: Callable[[], CenterClient],
                 clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock
        self.station_id, self.center, self.client, self.new_id = (station_id, center,
                                                                  client, new_id)

    @property
    def decides(self) -> bool:
        """Deletions approved only at the center."""
        return self.center.retention == "center"

    def pull(self, actor: Actor) -> Doc:
        """One exchange with the center; what was carried out and what was not."""
        self.gate.require(actor, P.WITNESS_PUSH, subjects=["retention"])
        if not self.center.url:
            raise ConfigError("no center is configured: set [center] url and keyring",
                              key="center.url")
        holds, decisions, reported = self._exchange()
        held = [self._hold(actor, h) for h in holds]
        decided = [self._decision(actor, d) for d in decisions] if self.decides else []
        return {"station_id": self.station_id, "mode": self.center.retention,
                "reported": reported, "holds": [h for h in held if h is not None],
                "decisions": [d for d in decided if d is not None],
                "center_holds": len(holds)}

    def _exchange(self) -> tuple[list[Doc], list[Doc], int]:
        client = self.client()
        open_ = [report_of(v) for v in self._pending()] if self.decides else []
        batches = [open_[i:i + MAX_REPORTED] for i in range(0, len(open_), MAX_REPORTED)]
        holds: list[Doc] = []
        decisions: list[Doc] = []
        reported = 0
        for batch in batches or [[]]:
            answer = client.retention(self.station_id, batch)
            holds = [_checked(h, self.station_id, _HOLD) for h in answer["holds"]]
            decisions += [_checked(d, self.station_id, _DECISION)
                          for d in answer["decisions"]]
            reported += int(answer.get("reported") or 0)
        return holds, decisions, reported

    def _pending(self, s: Session | None = None) -> list[PendingView]:
        if s is None:
            with Session(self.catalog.engine) as own:
                return self._pending(own)
        return list(fold_actions(vouched(s, s.exec(select(RetentionAction)).all())).values())

    # ------------------------------------------------------------------ holds

    def _hold(self, actor: Actor, h: Doc) -> Doc | None:
        """Place or release the station hold of center hold ``h``; None: nothing to do."""
        if h["scope"] not in SCOPES:
            return {"center_hold": h["id"], "status": "refused",
                    "why": f"unknown scope {h['scope']!r}"}
        now = self.clock()
        with self.catalog.transaction() as s:
            self.audit.lock(s)  # ordered with retention runs, as a hold placed here
            local = s.exec(select(Hold).where(Hold.source == h["id"])).first()
            if local is None and h["active"]:
                return self._place(s, actor, h, now)
            if local is not None and not h["active"]:
                return self._release(s, actor, h, local, now)
        return None

    def _place(self, s: Session, actor: Actor, h: Doc, now: datetime) -> Doc:
        target, why = self._target(s, h["scope"], h["target"])
        if why is not None:
            return {"center_hold": h["id"], "status": "unplaced", "why": why}
        row = Hold(id=self.new_id(), scope=h["scope"], target=target, reason=h["reason"],
                   placed_by=h["placed_by"], placed_at=now, source=h["id"])
        bind(s, self.audit, row, actor=actor.audit_name, action="hold.add",
             subjects=[f"hold:{row.id}", f"{row.scope}:{target}", f"center-hold:{h['id']}"],
             details={"scope": row.scope, "target": target, "given": h["target"],
                      "reason": row.reason, "source": "center", "center_hold": h["id"],
                      "placed_by": h["placed_by"], "placed_at_center": h["placed_at"]},
             at=now)
        return {"center_hold": h["id"], "hold": row.id, "status": "placed",
                "scope": row.scope, "target": target}

    def _target(self, s: Session, scope: str, target: str) -> tuple[str, str | None]:
        """The station's id of the target, or why it cannot be held here now."""
        if scope == "case":
            case = s.exec(select(Case).where(Case.number == target)).first() or s.get(
                Case, target)
            return (target, f"no case {target} here") if case is None else (case.id, None)
        if scope == "recording":
            if s.get(Recording, target) is None:
                return target, f"no recording {target} here"
            if tombstoned_recordings(s, [target]):
                return target, f"recording {target} was already deleted by retention"
        return target, None

    def _release(self, s: Session, actor: Actor, h: Doc, local: Hold,
                 now: datetime) -> Doc | None:
        if s.exec(select(HoldRelease).where(HoldRelease.hold_id == local.id)).first():
            return None
        by, reason = h["released_by"], (h["release_reason"] or "").strip()
        if not by or not reason or by == local.placed_by or not is_person(by):
            # The center's two-person rule, checked again: the hold stays.
            return {"center_hold": h["id"], "hold": local.id, "status": "refused",
                    "why": f"the center's release by {by!r} is not another person's"}
        bind(s, self.audit, HoldRelease(hold_id=local.id, released_by=by, reason=reason,
                                        at=now),
             actor=actor.audit_name, action="hold.release",
             subjects=[f"hold:{local.id}", f"{local.scope}:{local.target}",
                       f"center-hold:{h['id']}"],
             details={"scope": local.scope, "target": local.target,
                      "placed_by": local.placed_by, "reason": reason, "source": "center",
                      "center_hold": h["id"], "released_by": by}, at=now)
        return {"center_hold": h["id"], "hold": local.id, "status": "released"}

    # ------------------------------------------------------------------ decisions

    def _decision(self, actor: Actor, d: Doc) -> Doc | None:
        """Record the center's decision on the deletion it names, if still open."""
        out: Doc = {"center_decision": d["id"], "action_id": d["action_id"]}
        if d["verdict"] not in VERDICTS:
            return {**out, "status": "refused", "why": f"verdict {d['verdict']!r}"}
        now = self.clock()
        with self.catalog.transaction() as s:
            self.audit.lock(s)  # no run or approval lands between reading and writing
            if s.exec(select(RetentionAction).where(
                    RetentionAction.decision == d["id"])).first():
                return None
            view = next((v for v in self._pending(s) if v.action_id == d["action_id"]), None)
            if view is None:
                return {**out, "status": "stale",
                        "why": "the deletion is no longer open here"}
            by = d["decided_by"]
            if by == view.scheduled_by or not is_person(by):
                return {**out, "status": "refused", "recording_id": view.recording_id,
                        "why": f"{by} scheduled this deletion or is no person"}
            self._step(s, actor, view, d, now)
        return {**out, "status": d["verdict"], "recording_id": view.recording_id,
                "decided_by": by}

    def _step(self, s: Session, actor: Actor, view: PendingView, d: Doc,
              now: datetime) -> None:
        approved = d["verdict"] == "approved"
        step = "approved" if approved else "cancelled"
        reason = view.reason if approved else f"rejected at the center: {d['reason']}"
        row = RetentionAction(recording_id=view.recording_id, step=step,
                              rule=view.rule if approved else "center", reason=reason,
                              due_at=view.due_at, actor=d["decided_by"], at=now,
                              decision=d["id"])
        bind(s, self.audit, row, actor=actor.audit_name, action=f"retention.{VERBS[step]}",
             subjects=[f"recording:{view.recording_id}", f"center-decision:{d['id']}"],
             details={"rule": row.rule, "reason": reason,
                      "due_at": view.due_at.isoformat(), "scheduled_by": view.scheduled_by,
                      "action": view.action_id, "source": "center",
                      "center_decision": d["id"], "decided_by": d["decided_by"],
                      "decided_at": d["at"]}, at=now)


__all__ = ["CenterSync", "report_of"]
