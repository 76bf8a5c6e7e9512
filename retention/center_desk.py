"""Holds placed at the center on a station's records, through the one gate.

A user with ``hold.place`` at the center holds a case, a recording or an officer's
footage of one witnessed station (the case and the recording must be in the center's
index, resolved to the station's case id: what the center cannot name it does not hold);
another user with ``hold.release`` releases it. Rows are append-only and each is bound to
its audit event at the center. Stations carry the holds out at their next pull
(:mod:`retention.center_sync`), so a hold placed while a station is down reaches it later.
The station's account reads only its own station's holds (:meth:`CenterHolds.for_station`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection
from sqlmodel import Session, col
from sqlmodel import select as sselect

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched
from archive.catalog import Catalog
from archive.catalog.types import table_of
from archive.witness.index import CentralCase, CentralLink, CentralRecording
from config.witness import WitnessSettings
from integrity.errors import Conflict, InvalidRequest, NotFound, SelfApproval
from records.permissions import Actor, Gate, P
from records.persons import is_person
from retention.central_models import CenterHold, CenterHoldRelease
from retention.holds import hold_request

_C, _L, _R = table_of(CentralCase), table_of(CentralLink), table_of(CentralRecording)


@dataclass(frozen=True, slots=True)
class Label:
    """A case's unit and sensitivity label, as the center's index has them."""

    unit: str
    sensitivity: str


def labels_of(conn: Connection, station: str, scope: str, target: str) -> list[Label]:
    """What makes a held target secret: a case's own label, the labels of every case a
    recording is actively linked to (one hidden case hides it), none for an officer."""
    if scope == "case":
        rows = conn.execute(select(_C.c.unit, _C.c.sensitivity).where(
            _C.c.station_id == station, _C.c.case_id == target))
    elif scope == "recording":
        rows = conn.execute(select(_C.c.unit, _C.c.sensitivity).join(_L, and_(
            _L.c.station_id == _C.c.station_id, _L.c.case_id == _C.c.case_id)).where(
            _L.c.station_id == station, _L.c.recording_id == target, _L.c.active))
    else:
        return []
    return [Label(r.unit, r.sensitivity) for r in rows]


@dataclass(frozen=True, slots=True)
class CenterHoldView:
    hold: CenterHold
    label: str  # the case number for a case
    release: CenterHoldRelease | None

    @property
    def active(self) -> bool:
        return self.release is None

    def to_json(self) -> dict[str, object]:
        h, r = self.hold, self.release
        return {"id": h.id, "station_id": h.station_id, "scope": h.scope,
                "target": h.target, "label": self.label, "reason": h.reason,
                "placed_by": h.placed_by, "placed_at": h.placed_at.isoformat(),
                "active": self.active, "released_by": r.released_by if r else None,
                "release_reason": r.reason if r else None,
                "released_at": r.at.isoformat() if r else None}


class CenterHolds:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 witness: WitnessSettings, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock
        self.witness, self.new_id = witness, new_id

    # ------------------------------------------------------------------ people

    def place(self, actor: Actor, *, station: str, scope: str, target: str,
              reason: str) -> dict[str, object]:
        """Hold ``station``'s case (number or id), recording or officer."""
        target, reason = hold_request(scope, target, reason)
        self._witnessed(station)
        resolved = self._resolve(actor, station, scope, target)
        now = self.clock()
        row = CenterHold(id=self.new_id(), station_id=station, scope=scope, target=resolved,
                         reason=reason, placed_by=actor.name, placed_at=now)
        with self.catalog.transaction() as s:
            bind(s, self.audit, row, actor=actor.audit_name, action="center.hold.add",
                 subjects=[f"center-hold:{row.id}", f"station:{station}",
                           f"{scope}:{resolved}"],
                 details={"station": station, "scope": scope, "target": resolved,
                          "given": target, "reason": reason}, at=now)
        return self.view(row.id).to_json()

    def _witnessed(self, station: str) -> None:
        if self.witness.station(station) is None:
            raise NotFound(f"station {station!r} is not witnessed here", station=station)

    def _resolve(self, actor: Actor, station: str, scope: str, target: str) -> str:
        """The station's id of the target (a case number becomes its case id); refused
        unless the actor may place the hold and see what it holds."""
        subjects = [f"station:{station}", f"{scope}:{target}"]
        with self.catalog.engine.connect() as conn:
            if scope == "case":
                found = conn.execute(select(_C.c.case_id).where(
                    _C.c.station_id == station,
                    (_C.c.case_id == target) | (_C.c.number == target))).scalars().all()
                if len(found) != 1:
                    raise NotFound(f"station {station} has no case {target} at the center "
                                   "(or more than one by that number: give its id)",
                                   station=station, case=target)
                target = found[0]
            elif scope == "recording" and conn.execute(select(_R.c.recording_id).where(
                    _R.c.station_id == station, _R.c.recording_id == target)).first() is None:
                raise NotFound(f"station {station} has no recording {target} at the center",
                               station=station, recording=target)
            labels = labels_of(conn, station, scope, target)
        self.gate.require(actor, P.HOLD_PLACE, subjects=subjects)
        for label in labels:
            self.gate.require(actor, P.HOLD_PLACE, subjects=subjects, unit=label.unit,
                              sensitivity=label.sensitivity)
        return target

    def release(self, actor: Actor, hold_id: str, *, reason: str) -> dict[str, object]:
        """Release a center hold; only a user other than the one who placed it may."""
        self.gate.require(actor, P.HOLD_RELEASE, subjects=[f"center-hold:{hold_id}"])
        view = self.view(hold_id)
        h = view.hold
        if not self._seen(actor, [view])[0]:
            raise NotFound(f"no center hold {hold_id}", hold=hold_id)
        if not reason.strip():
            raise InvalidRequest("a reason is required to release a hold", hold=hold_id)
        if not view.active:
            raise Conflict(f"center hold {hold_id} was already released", hold=hold_id)
        if h.placed_by == actor.name or not is_person(actor.name):
            self.gate.refuse(actor, P.HOLD_RELEASE, [f"center-hold:{hold_id}"],
                             f"{actor.name} placed center hold {hold_id}; another user "
                             "releases it", error=SelfApproval)
        now = self.clock()
        with self.catalog.transaction() as s:
            self.audit.lock(s)  # one release, even when two people click at once
            if s.exec(sselect(CenterHoldRelease)
                      .where(CenterHoldRelease.hold_id == hold_id)).first():
                raise Conflict(f"center hold {hold_id} was already released", hold=hold_id)
            bind(s, self.audit, CenterHoldRelease(hold_id=hold_id, released_by=actor.name,
                                                  reason=reason.strip(), at=now),
                 actor=actor.audit_name, action="center.hold.release",
                 subjects=[f"center-hold:{hold_id}", f"station:{h.station_id}",
                           f"{h.scope}:{h.target}"],
                 details={"station": h.station_id, "scope": h.scope, "target": h.target,
                          "placed_by": h.placed_by, "reason": reason.strip()}, at=now)
        return self.view(hold_id).to_json()

    def listing(self, actor: Actor, *, station: str | None = None,
             active_only: bool = True) -> dict[str, Any]:
        """Center holds the actor may see (an audited read); ``hidden`` counts the rest."""
        if not any(actor.may(p) for p in (P.HOLD_PLACE, P.HOLD_RELEASE, P.RETENTION_PLAN)):
            self.gate.require(actor, P.HOLD_PLACE, subjects=["center:holds"])
        views = [v for v in self.views(station) if v.active or not active_only]
        seen = self._seen(actor, views)
        shown = [v for v, ok in zip(views, seen, strict=True) if ok]
        self.gate.read(actor, "center.holds", [f"center-hold:{v.hold.id}" for v in shown],
                       {"station": station, "active_only": active_only,
                        "shown": len(shown), "hidden": len(views) - len(shown)})
        return {"holds": [v.to_json() for v in shown], "hidden": len(views) - len(shown)}

    def _seen(self, actor: Actor, views: Sequence[CenterHoldView]) -> list[bool]:
        with self.catalog.engine.connect() as conn:
            return [actor.sees_every(labels_of(conn, v.hold.station_id, v.hold.scope,
                                               v.hold.target)) for v in views]

    # ------------------------------------------------------------------ reading

    def views(self, station: str | None = None,
              ids: Sequence[str] | None = None) -> list[CenterHoldView]:
        """Holds with their releases (a release no event vouches for ends nothing)."""
        query = sselect(CenterHold)
        if station is not None:
            query = query.where(CenterHold.station_id == station)
        if ids is not None:
            query = query.where(col(CenterHold.id).in_(list(ids)))
        with Session(self.catalog.engine) as s:
            holds = list(s.exec(query.order_by(col(CenterHold.placed_at),
                                               col(CenterHold.id))))
            releases = {r.hold_id: r for r in vouched(s, s.exec(sselect(CenterHoldRelease)
                        .where(col(CenterHoldRelease.hold_id).in_([h.id for h in holds]))))}
            cases = {h.target for h in holds if h.scope == "case"}
            numbers = dict(s.connection().execute(select(_C.c.case_id, _C.c.number).where(
                _C.c.case_id.in_(cases))).tuples().all()) if cases else {}
        return [CenterHoldView(h, numbers.get(h.target, h.target), releases.get(h.id))
                for h in holds]

    def view(self, hold_id: str) -> CenterHoldView:
        found = self.views(ids=[hold_id])
        if not found:
            raise NotFound(f"no center hold {hold_id}", hold=hold_id)
        return found[0]


__all__ = ["CenterHoldView", "CenterHolds", "Label", "labels_of"]
