"""Equipment: body-worn cameras and the officer each is assigned to over time.

A camera is a ``device`` row (made when it is first docked). Its assignment history is
the append-only ``cameraassignment`` table: each row says who holds the camera from a
date on (``officer_id`` None: back in the store, unassigned); the row with the latest
``valid_from`` (then the latest id) up to a moment is the assignment at that moment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Field, Session, SQLModel, col, func, select

from archive.audit.log import AuditLog
from archive.catalog import Catalog
from archive.catalog.models import Device, DockSession, Officer
from archive.catalog.types import APPEND_ONLY, utc_field
from config.access import AccessSettings
from integrity.errors import InvalidRequest, NotFound
from records.permissions import Actor, Gate, P

#: Session outcomes after which the camera's footage was offloaded (with or without
#: findings); an interrupted or failed session is a dock but not an offload.
OFFLOADED = ("completed", "findings")


class CameraAssignment(SQLModel, table=True):
    """From ``valid_from`` on, camera ``device_serial`` is held by ``officer_id``."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    device_serial: str = Field(foreign_key="device.serial", index=True)
    officer_id: str | None = None  # police number; None: unassigned (in the store)
    valid_from: datetime = utc_field()
    actor: str
    reason: str = ""
    at: datetime = utc_field()




# ---------------------------------------------------------------------- pure core


@dataclass(frozen=True, slots=True)
class Docking:
    """What the sessions of one camera say: when it was last docked and offloaded, the
    clock drift seen at the last dock that could read the camera's clock, and the
    battery at the last dock where the camera reported it."""

    last_dock: datetime | None = None
    last_station: str | None = None  # where it was last docked: station and bay
    last_bay: str | None = None
    last_offload: datetime | None = None
    clock_drift_s: float | None = None
    drift_seen_at: datetime | None = None
    battery_percent: int | None = None
    battery_seen_at: datetime | None = None

    def battery(self) -> dict[str, object]:
        if self.battery_percent is None or self.battery_seen_at is None:
            return BATTERY_NOT_REPORTED
        return {"reported": True, "percent": self.battery_percent,
                "at": _iso(self.battery_seen_at)}


#: A camera that never reported its battery at a dock (a plain mass-storage camera has
#: no command for it): said in words, never a null that looks like a reading.
BATTERY_NOT_REPORTED: dict[str, object] = {"reported": False,
                                           "text": "not reported by the camera"}


@dataclass(frozen=True, slots=True)
class CameraView:
    serial: str
    camera_model: str | None
    first_seen: datetime
    officer: str | None  # police number of the holder now; None: unassigned
    unit: str | None  # the holder's unit
    since: datetime | None  # when the holder got it
    docking: Docking
    idle: bool  # not docked for the configured number of days

    def to_json(self) -> dict[str, object]:
        d = self.docking
        return {"serial": self.serial, "camera_model": self.camera_model,
                "first_seen": _iso(self.first_seen), "officer": self.officer,
                "unit": self.unit, "since": _iso(self.since),
                "last_dock": _iso(d.last_dock), "last_station": d.last_station,
                "last_bay": d.last_bay, "last_offload": _iso(d.last_offload),
                "clock_drift_s": d.clock_drift_s, "drift_seen_at": _iso(d.drift_seen_at),
                "battery": d.battery(),
                "idle": self.idle}


@dataclass(frozen=True, slots=True)
class UnitRatio:
    unit: str
    officers: int
    cameras: int
    required: int  # cameras the unit must hold: ceil(min_ratio x officers)

    @property
    def below(self) -> bool:
        return self.cameras < self.required

    def to_json(self) -> dict[str, object]:
        ratio = round(self.cameras / self.officers, 3) if self.officers else None
        return {"unit": self.unit, "officers": self.officers, "cameras": self.cameras,
                "ratio": ratio, "required": self.required, "below": self.below}


@dataclass(frozen=True, slots=True)
class EquipmentReport:
    at: datetime
    min_ratio: float
    idle_days: int
    cameras: tuple[CameraView, ...]
    units: tuple[UnitRatio, ...]

    def to_json(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "min_ratio": self.min_ratio,
                "idle_days": self.idle_days,
                "cameras": [c.to_json() for c in self.cameras],
                "units": [u.to_json() for u in self.units],
                "below_ratio": [u.unit for u in self.units if u.below],
                "idle": [c.serial for c in self.cameras if c.idle]}


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def holder_at(rows: Iterable[CameraAssignment], at: datetime) -> CameraAssignment | None:
    """The assignment in force at ``at``: latest ``valid_from`` not after it, then the
    latest row (a later row for the same date corrects an earlier one)."""
    valid = [r for r in rows if r.valid_from <= at]
    return max(valid, key=lambda r: (r.valid_from, r.id or 0)) if valid else None


def officer_units(access: AccessSettings, officers: Iterable[Officer]) -> dict[str, str]:
    """Police number -> unit: from ``[[access.users]]`` (one unit), else as the camera
    reported it when docked."""
    units = {o.police_number: o.unit for o in officers if o.unit}
    for user in access.users:
        if user.police_number and len(user.units) == 1:
            units[user.police_number] = user.units[0]
    return units


def officers_per_unit(access: AccessSettings) -> dict[str, int]:
    """Officers of each unit: users with the officer role, counted in each of their
    units (a user of every unit belongs to none in particular)."""
    counts: dict[str, int] = {}
    for user in access.users:
        if "officer" in user.roles:
            for unit in user.units:
                counts[unit] = counts.get(unit, 0) + 1
    return counts


def unit_ratios(cameras: Sequence[CameraView], officers: Mapping[str, int], *,
                units: Iterable[str], min_ratio: float) -> tuple[UnitRatio, ...]:
    held: dict[str, int] = {}
    for c in cameras:
        if c.unit is not None:
            held[c.unit] = held.get(c.unit, 0) + 1
    names = sorted({*units, *officers, *held})
    # a float product such as 1.1 x 10 is 11.000000000000002: round before the ceiling
    return tuple(UnitRatio(unit=u, officers=officers.get(u, 0), cameras=held.get(u, 0),
                           required=math.ceil(round(min_ratio * officers.get(u, 0), 6)))
                 for u in names)


# ---------------------------------------------------------------------- the desk


class EquipmentDesk:
    """Camera assignments (written, audited) and the equipment report (an audited read).

    A user bound to units sees the cameras held in them and the unassigned ones, and
    only their units' ratios."""

    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 access: AccessSettings, units: Sequence[str], min_ratio: float,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.audit, self.access = catalog, gate, audit, access
        self.units, self.min_ratio, self.clock = tuple(units), min_ratio, clock

    def _officer_units(self, s: Session) -> dict[str, str]:
        return officer_units(self.access, s.exec(select(Officer)).all())

    def _known_officer(self, s: Session, officer: str) -> bool:
        return (any(u.police_number == officer for u in self.access.users)
                or s.get(Officer, officer) is not None)

    def assign(self, actor: Actor, serial: str, *, officer: str | None,
               valid_from: datetime, reason: str = "") -> list[CameraAssignment]:
        """From ``valid_from`` on, ``officer`` (None: nobody, back in the store) holds
        the camera; answers its whole history."""
        now = self.clock()
        if valid_from > now:
            raise InvalidRequest("an assignment is recorded once it has happened: "
                                 f"{valid_from.isoformat()} is in the future",
                                 valid_from=valid_from.isoformat())
        with Session(self.catalog.engine) as s:
            if s.get(Device, serial) is None:
                raise NotFound(f"no camera {serial} (a camera is known from its first "
                               "dock)", serial=serial)
            if officer is not None and not self._known_officer(s, officer):
                raise InvalidRequest(f"no officer with police number {officer} (in "
                                     "[[access.users]] or seen at a dock)", officer=officer)
            unit = self._officer_units(s).get(officer) if officer else None
        self.gate.require(actor, P.EQUIPMENT_ASSIGN, subjects=[f"device:{serial}"], unit=unit)
        row = CameraAssignment(device_serial=serial, officer_id=officer,
                               valid_from=valid_from, actor=actor.name,
                               reason=reason.strip(), at=now)
        with self.catalog.transaction() as s:
            s.add(row)
            s.flush()
            self.audit.append(s, actor=actor.audit_name, action="equipment.assign",
                              subjects=[f"device:{serial}"],
                              details={"assignment": row.id, "officer": officer,
                                       "unit": unit, "from": valid_from.isoformat(),
                                       "reason": row.reason}, at=now)
        return self._history(serial)

    def _history(self, serial: str) -> list[CameraAssignment]:
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(CameraAssignment)
                               .where(CameraAssignment.device_serial == serial)
                               .order_by(col(CameraAssignment.id))).all())

    def history(self, actor: Actor, serial: str) -> list[CameraAssignment]:
        """Every assignment of one camera, in the order recorded."""
        self.gate.require(actor, P.EQUIPMENT_VIEW, subjects=[f"device:{serial}"])
        with Session(self.catalog.engine) as s:
            if s.get(Device, serial) is None:
                raise NotFound(f"no camera {serial}", serial=serial)
        rows = self._history(serial)
        self.gate.read(actor, "equipment.history", [f"device:{serial}"],
                       {"assignments": len(rows)})
        return rows

    def report(self, actor: Actor, *, idle_days: int) -> EquipmentReport:
        """Cameras (holder, docking, idle) and units below the equipment ratio."""
        self.gate.require(actor, P.EQUIPMENT_VIEW, subjects=[])
        now = self.clock()
        cameras = [c for c in self._cameras(now, idle_days)
                   if actor.sees(unit=c.unit, sensitivity="none")]
        units = [u for u in unit_ratios(cameras, officers_per_unit(self.access),
                                        units=self.units, min_ratio=self.min_ratio)
                 if actor.sees(unit=u.unit, sensitivity="none")]
        report = EquipmentReport(at=now, min_ratio=self.min_ratio, idle_days=idle_days,
                                 cameras=tuple(cameras), units=tuple(units))
        self.gate.read(actor, "equipment.report", [],
                       {"cameras": len(cameras), "idle_days": idle_days,
                        "below_ratio": [u.unit for u in units if u.below]})
        return report

    def _cameras(self, now: datetime, idle_days: int) -> list[CameraView]:
        with Session(self.catalog.engine) as s:
            devices = s.exec(select(Device).order_by(col(Device.serial))).all()
            assignments = s.exec(select(CameraAssignment)).all()
            docking = _docking(s)
            units = self._officer_units(s)
        by_serial: dict[str, list[CameraAssignment]] = {}
        for a in assignments:
            by_serial.setdefault(a.device_serial, []).append(a)
        idle_before = now - timedelta(days=idle_days)
        views = []
        for d in devices:
            held = holder_at(by_serial.get(d.serial, []), now)
            dock = docking.get(d.serial, Docking())
            officer = held.officer_id if held else None
            views.append(CameraView(
                serial=d.serial, camera_model=d.camera_model, first_seen=d.first_seen,
                officer=officer, unit=units.get(officer) if officer else None,
                since=held.valid_from if held else None, docking=dock,
                idle=(dock.last_dock or d.first_seen) < idle_before))
        return views


def _newest(s: Session, *where: Any) -> dict[str, DockSession]:
    """Per camera, its newest session (by start) among those matching ``where``."""
    newest = (select(DockSession.device_serial,
                     func.max(DockSession.started_at).label("started"))
              .where(*where).group_by(col(DockSession.device_serial)).subquery())
    rows = s.exec(select(DockSession).where(*where).join(
        newest, (newest.c.device_serial == DockSession.device_serial)
        & (newest.c.started == DockSession.started_at))).all()
    return {r.device_serial: r for r in rows}


def _docking(s: Session) -> dict[str, Docking]:
    """Per camera, from its sessions, in SQL: last dock (when, where), last offload,
    the clock drift seen at the newest dock that could read the camera's clock, the
    battery at the newest dock where the camera reported it."""
    offloaded = dict(s.exec(
        select(DockSession.device_serial, func.max(DockSession.ended_at))
        .where(col(DockSession.outcome).in_(OFFLOADED))
        .group_by(col(DockSession.device_serial))).all())
    drifts = _newest(s, col(DockSession.clock_drift_s).is_not(None))
    batteries = _newest(s, col(DockSession.battery_percent).is_not(None))
    out = {}
    for serial, last in _newest(s).items():
        drift, battery = drifts.get(serial), batteries.get(serial)
        out[serial] = Docking(
            last_dock=last.started_at, last_station=last.station_id, last_bay=last.bay,
            last_offload=offloaded.get(serial),
            clock_drift_s=drift.clock_drift_s if drift else None,
            drift_seen_at=drift.started_at if drift else None,
            battery_percent=battery.battery_percent if battery else None,
            battery_seen_at=battery.started_at if battery else None)
    return out


__all__ = ["OFFLOADED", "CameraAssignment", "CameraView", "Docking", "EquipmentDesk",
           "EquipmentReport", "UnitRatio", "holder_at", "officer_units", "officers_per_unit",
           "unit_ratios"]
