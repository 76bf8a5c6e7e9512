"""Deletions decided at the center, and what a station's account exchanges with it.

A station with ``[center] retention = "center"`` reports its scheduled deletions (item,
rule, reason, due date, who scheduled); a center user with ``retention.approve`` other
than the one who scheduled approves or rejects each, once (append-only, bound to its
audit event). At each exchange the station's account hands in its open deletions and
takes back its holds and the decisions on what it reported; it may read nothing of
another station's (refused and audited). The station still re-plans before deleting
anything (retention/executor.py): an approval here can only let a deletion go ahead
that the station's own planner still wants.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy import tuple_
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched_if
from archive.catalog import Catalog
from archive.catalog.types import table_of
from archive.witness.mirror import StationEvent
from config.witness import WitnessSettings
from integrity.errors import Conflict, InvalidRequest, NotFound, SelfApproval
from records.permissions import Actor, Gate, P
from records.persons import is_person
from retention.center_desk import CenterHolds, labels_of
from retention.central_models import CenterDecision, CenterDeletion

VERDICTS = ("approved", "rejected")
_VERBS = {"approved": "approve", "rejected": "reject"}
#: Deletions one exchange may report (the client sends them in batches of this size).
MAX_REPORTED = 500


def parse_reported(docs: Sequence[dict[str, Any]], station: str,
                   now: datetime) -> list[CenterDeletion]:
    """The station's reported deletions as rows; refuses a malformed one."""
    out = []
    for doc in docs:
        try:
            due = doc.get("due_at")
            out.append(CenterDeletion(
                station_id=station, action_id=_int(doc["action_id"]),
                recording_id=_text(doc["recording_id"]), rule=_text(doc["rule"]),
                reason=str(doc["reason"]), scheduled_by=_text(doc["scheduled_by"]),
                due_at=None if due is None else datetime.fromisoformat(str(due)),
                scheduled_at=datetime.fromisoformat(str(doc["scheduled_at"])),
                reported_at=now))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidRequest(f"a reported deletion is malformed: {exc}",
                                 station=station) from exc
        if out[-1].scheduled_at.tzinfo is None:
            raise InvalidRequest("reported times must carry their UTC offset",
                                 station=station)
    return out


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a step id")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{value!r} is not a name")
    return value


def closed_steps(conn: Connection, stations: Collection[str]) -> dict[tuple[str, str], int]:
    """(station, recording) → the highest id of a retention step that ended a deletion
    of it there (cancelled or executed), from the station's mirrored log. Step ids only
    grow, so a reported deletion whose ``scheduled`` step id is lower has ended."""
    t = table_of(StationEvent)
    out: dict[tuple[str, str], int] = {}
    for station, subjects, details in conn.execute(
            sa_select(t.c.station_id, t.c.subjects, t.c.details).where(
                t.c.station_id.in_(list(stations)),
                t.c.action.in_(("retention.cancel", "retention.execute")))):
        row = details.get("row") if isinstance(details, dict) else None
        if not isinstance(row, dict) or row.get("table") != "retentionaction":
            continue
        step = int(row["id"]) if str(row.get("id", "")).isdigit() else -1
        for subject in subjects if isinstance(subjects, list) else []:
            if isinstance(subject, str) and subject.startswith("recording:"):
                key = (station, subject.removeprefix("recording:"))
                out[key] = max(out.get(key, -1), step)
    return out


def decision_json(d: CenterDecision) -> dict[str, object]:
    return {"id": d.id, "station_id": d.station_id, "action_id": d.action_id,
            "verdict": d.verdict, "reason": d.reason, "decided_by": d.decided_by,
            "at": d.at.isoformat()}


class CenterDeletions:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 witness: WitnessSettings, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock
        self.witness, self.new_id = witness, new_id
        self.holds = CenterHolds(catalog=catalog, gate=gate, audit=audit, witness=witness,
                                 clock=clock)

    # ------------------------------------------------------------------ the station

    def exchange(self, actor: Actor, station: str,
                 reported: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The station's account: keep its newly reported deletions; its holds (all,
        with releases) and the decisions on the deletions it reported now."""
        self._own(actor, station)
        if len(reported) > MAX_REPORTED:
            raise InvalidRequest(f"at most {MAX_REPORTED} deletions an exchange",
                                 station=station)
        now = self.clock()
        rows = parse_reported(reported, station, now)
        keys = [(station, r.action_id) for r in rows]
        with self.catalog.transaction() as s:
            self.audit.lock(s)
            known = set(s.exec(select(CenterDeletion.action_id).where(
                CenterDeletion.station_id == station,
                col(CenterDeletion.action_id).in_([k[1] for k in keys])))) if keys else set()
            new = [r for r in rows if r.action_id not in known]
            s.add_all(new)
            if new:
                self.audit.append(s, actor=actor.audit_name,
                                  action="center.retention.reported",
                                  subjects=[f"station:{station}",
                                            *(f"recording:{r.recording_id}" for r in new)],
                                  details={"station": station, "count": len(new),
                                           "actions": [r.action_id for r in new]}, at=now)
            decided = self._decisions(s, keys)
        return {"station_id": station, "reported": len(new),
                "holds": [v.to_json() for v in self.holds.views(station)],
                "decisions": [decision_json(d) for d in decided]}

    def _own(self, actor: Actor, station: str) -> None:
        """Only the station's own account (``[[witness.stations]] user``)."""
        subjects = [f"station:{station}"]
        self.gate.require(actor, P.WITNESS_SUBMIT, subjects=subjects)
        entry = self.witness.station(station)
        if entry is None or entry.user_name != actor.name:
            self.gate.refuse(actor, P.WITNESS_SUBMIT, subjects,
                             f"{actor.name} is not the account of station {station!r}: it "
                             "reads only its own holds and decisions")

    @staticmethod
    def _decisions(s: Session, keys: Sequence[tuple[str, int]]) -> list[CenterDecision]:
        if not keys:
            return []
        rows = s.exec(select(CenterDecision).where(tuple_(
            col(CenterDecision.station_id), col(CenterDecision.action_id)).in_(keys)))
        # An approval no audit event vouches for lets nothing go; a rejection keeps.
        return vouched_if(s, rows, lambda d: d.verdict == "approved")

    # ------------------------------------------------------------------ people

    def pending(self, actor: Actor, *, station: str | None = None,
                undecided: bool = True) -> dict[str, Any]:
        """Reported deletions the actor may see, with their decision if any."""
        if not actor.may(P.RETENTION_PLAN):
            self.gate.require(actor, P.RETENTION_APPROVE, subjects=["center:retention"])
        query = select(CenterDeletion).order_by(col(CenterDeletion.due_at),
                                                col(CenterDeletion.id))
        if station is not None:
            query = query.where(CenterDeletion.station_id == station)
        with Session(self.catalog.engine) as s:
            rows = list(s.exec(query))
            decided = {(d.station_id, d.action_id): d for d in self._decisions(
                s, [(r.station_id, r.action_id) for r in rows])}
            conn = s.connection()
            ended = closed_steps(conn, {r.station_id for r in rows})
            closed = {r.id for r in rows
                      if ended.get((r.station_id, r.recording_id), -1) > r.action_id}
            shown = [r for r in rows if (not undecided or (
                (r.station_id, r.action_id) not in decided and r.id not in closed))
                and actor.sees_every(labels_of(conn, r.station_id, "recording",
                                               r.recording_id))]
        self.gate.read(actor, "center.retention",
                       [f"recording:{r.recording_id}" for r in shown],
                       {"station": station, "shown": len(shown)})
        return {"pending": [_deletion_json(r, decided.get((r.station_id, r.action_id)))
                            | {"closed_at_station": r.id in closed} for r in shown]}

    def decide(self, actor: Actor, *, station: str, action_id: int, verdict: str,
               reason: str) -> dict[str, object]:
        """Approve or reject a reported deletion: once, by a person other than the one
        who scheduled it."""
        if verdict not in VERDICTS:
            raise InvalidRequest(f"verdict {verdict!r} is not one of {list(VERDICTS)}")
        if verdict == "rejected" and not reason.strip():
            raise InvalidRequest("a reason is required to reject a deletion")
        row = self._reported(station, action_id)
        subjects = [f"station:{station}", f"recording:{row.recording_id}"]
        self.gate.require(actor, P.RETENTION_APPROVE, subjects=subjects)
        with self.catalog.engine.connect() as conn:
            labels = labels_of(conn, station, "recording", row.recording_id)
        for label in labels:
            self.gate.require(actor, P.RETENTION_APPROVE, subjects=subjects,
                              unit=label.unit, sensitivity=label.sensitivity)
        if row.scheduled_by == actor.name or not is_person(actor.name):
            self.gate.refuse(actor, P.RETENTION_APPROVE, subjects,
                             f"{actor.name} scheduled this deletion or is no person; "
                             "another user decides it", error=SelfApproval)
        return self._record(actor, row, verdict, reason.strip() or verdict, subjects)

    def _reported(self, station: str, action_id: int) -> CenterDeletion:
        with Session(self.catalog.engine) as s:
            row = s.exec(select(CenterDeletion).where(
                CenterDeletion.station_id == station,
                CenterDeletion.action_id == action_id)).first()
        if row is None:
            raise NotFound(f"station {station} reported no deletion {action_id}",
                           station=station, action=action_id)
        return row

    def _record(self, actor: Actor, row: CenterDeletion, verdict: str, reason: str,
                subjects: list[str]) -> dict[str, object]:
        now = self.clock()
        decision = CenterDecision(id=self.new_id(), station_id=row.station_id,
                                  action_id=row.action_id, verdict=verdict, reason=reason,
                                  decided_by=actor.name, at=now)
        with self.catalog.transaction() as s:
            self.audit.lock(s)
            if s.exec(select(CenterDecision).where(
                    CenterDecision.station_id == row.station_id,
                    CenterDecision.action_id == row.action_id)).first():
                raise Conflict(f"the deletion {row.action_id} of station {row.station_id} "
                               "was already decided", action=row.action_id)
            bind(s, self.audit, decision, actor=actor.audit_name,
                 action=f"center.retention.{_VERBS[verdict]}",
                 subjects=subjects,
                 details={"station": row.station_id, "action": row.action_id,
                          "verdict": verdict, "reason": reason, "rule": row.rule,
                          "scheduled_by": row.scheduled_by}, at=now)
        return _deletion_json(row, decision)


def _deletion_json(r: CenterDeletion, d: CenterDecision | None) -> dict[str, object]:
    return {"station_id": r.station_id, "action_id": r.action_id,
            "recording_id": r.recording_id, "rule": r.rule, "reason": r.reason,
            "due_at": r.due_at.isoformat() if r.due_at else None,
            "scheduled_by": r.scheduled_by, "scheduled_at": r.scheduled_at.isoformat(),
            "reported_at": r.reported_at.isoformat(),
            "decision": None if d is None else decision_json(d)}


__all__ = ["MAX_REPORTED", "VERDICTS", "CenterDeletions", "closed_steps", "decision_json",
           "parse_reported"]
