"""Equipment at desk level, hand-counted: who holds each camera, docking, idle cameras
and units below the equipment ratio, on SQLite and PostgreSQL.

Now is 2026-12-10 08:00Z. Officers (config): P001, P002 of 城东中队, P003 of 城西中队
(and `officer`, of every unit: counted in none). min_ratio 1: 城东 needs 2, 城西 1.

C1: P001 from 11-01, P003 from 12-05 (held by 城西). Docked 11-20 (drift +80 s,
    battery 64%) and 12-09 (drift +3.5 s, completed, battery not reported): the battery
    shown is the newest reading, 64% at 11-20.
C2: P002 from 11-01, then a later row for the same date names P001 (a correction:
    P001 holds it, 城东). Offloaded 12-01 (completed), docked 12-02 (interrupted): last
    offload 12-01, last dock 12-02; 8 days ago: idle at 7 days, not at 10.
C3: P001 from 11-01, back in the store from 12-08 (held by nobody). Docked 12-09
    (failed, battery 15%): no offload, but the battery was seen at the dock.
C2 and C4 never reported a battery (mass-storage cameras): "not reported by the camera".
C4: never assigned, first seen 11-01, no session: idle.
So 城东 holds 1 (C2) of 2 required: below; 城西 holds 1 (C1) of 1: not below.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from evidock_testing import station_on
from sqlalchemy import text
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog.models import Device, DockSession
from evidock.wiring import Services
from integrity.errors import Forbidden, InvalidRequest, NotFound
from records.equipment import CameraAssignment, EquipmentDesk, holder_at

NOW = datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
EXTRA = """
[[access.users]]
name = "o1"
roles = ["officer"]
units = ["城东中队"]
police_number = "P001"
[[access.users]]
name = "o2"
roles = ["officer"]
units = ["城东中队"]
police_number = "P002"
[[access.users]]
name = "o3"
roles = ["officer"]
units = ["城西中队"]
police_number = "P003"
[[access.users]]
name = "westsup"
roles = ["supervisor"]
units = ["城西中队"]

[equipment]
min_ratio = 1.0
"""


def d(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def _session(n: int, serial: str, start: datetime, outcome: str,
             drift: float | None = None, *, battery: int | None = None) -> DockSession:
    return DockSession(id=f"s{n}", station_id="st", device_serial=serial, camera_model="m",
                       source="/dev/x", started_at=start, ended_at=start + timedelta(hours=1),
                       outcome=outcome, clock_drift_s=drift, battery_percent=battery)


def populate(svc: Services) -> None:
    with svc.catalog.transaction() as s:
        for serial in ("C1", "C2", "C3", "C4"):
            s.add(Device(serial=serial, camera_model="m", first_seen=d(11, 1)))
        s.flush()
        for row in (_session(1, "C1", d(11, 20), "completed", 80.0, battery=64),
                    _session(2, "C1", d(12, 9, 10), "completed", 3.5),
                    _session(3, "C2", d(12, 1), "completed"),
                    _session(4, "C2", d(12, 2), "interrupted"),
                    _session(5, "C3", d(12, 9), "failed", battery=15)):
            s.add(row)
    desk = equipment(svc)
    admin = svc.gate().by_name("admin")
    for serial, officer, start in (("C1", "P001", d(11, 1)), ("C1", "P003", d(12, 5)),
                                   ("C2", "P002", d(11, 1)), ("C3", "P001", d(11, 1)),
                                   ("C3", None, d(12, 8)), ("C2", "P001", d(11, 1))):
        desk.assign(admin, serial, officer=officer, valid_from=start, reason="领用")


def equipment(svc: Services) -> EquipmentDesk:
    s = svc.settings
    return EquipmentDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                         access=s.access, units=s.cases.units,
                         min_ratio=s.equipment.min_ratio, clock=lambda: NOW)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    home = tmp_path_factory.mktemp(f"equipment-{request.param}") / "home"
    with station_on(request.param, home, extra=EXTRA, start=NOW) as svc:
        populate(svc)
        yield svc


def test_the_report_matches_the_hand_count(station: Services) -> None:
    report = equipment(station).report(station.gate().by_name("supervisor"), idle_days=7)
    got = {c.serial: (c.officer, c.unit, c.docking.last_dock, c.docking.last_offload,
                      c.docking.clock_drift_s, c.idle) for c in report.cameras}
    assert got == {
        "C1": ("P003", "城西中队", d(12, 9, 10), d(12, 9, 11), 3.5, False),
        "C2": ("P001", "城东中队", d(12, 2), d(12, 1, 1), None, True),
        "C3": (None, None, d(12, 9), None, None, False),
        "C4": (None, None, None, None, None, True),
    }
    units = {u.unit: (u.officers, u.cameras, u.required, u.below) for u in report.units}
    assert units == {"城东中队": (2, 1, 2, True), "城西中队": (1, 1, 1, False)}
    c1 = next(c for c in report.cameras if c.serial == "C1")
    assert (c1.docking.last_station, c1.docking.drift_seen_at) == ("st", d(12, 9, 10))
    as_json = report.to_json()
    assert as_json["below_ratio"] == ["城东中队"] and as_json["idle"] == ["C2", "C4"]
    longer = equipment(station).report(station.gate().by_name("supervisor"), idle_days=10)
    assert [c.serial for c in longer.cameras if c.idle] == ["C4"]


def test_the_battery_is_the_newest_reading_at_a_dock_or_said_not_reported(
        station: Services) -> None:
    report = equipment(station).report(station.gate().by_name("supervisor"), idle_days=7)
    got = {c["serial"]: c["battery"] for c in report.to_json()["cameras"]}  # type: ignore[attr-defined]
    not_reported = {"reported": False, "text": "not reported by the camera"}
    assert got == {
        "C1": {"reported": True, "percent": 64, "at": d(11, 20).isoformat()},
        "C2": not_reported,
        "C3": {"reported": True, "percent": 15, "at": d(12, 9).isoformat()},
        "C4": not_reported,
    }


def test_a_sessions_battery_reading_never_changes(station: Services) -> None:
    """Guarded like the clock drift (migration 0011): not even an open session's. (The
    open session is rolled back with the refused UPDATE: the module's counts stand.)"""
    with pytest.raises(Exception, match="never changes|UPDATE refused"), \
            station.catalog.transaction() as s:
        s.add(DockSession(id="open", station_id="st", device_serial="C4", camera_model="m",
                          source="/dev/x", started_at=d(12, 9, 12), battery_percent=50))
        s.flush()
        s.execute(text("UPDATE docksession SET battery_percent = 99 WHERE id = 'open'"))
    with pytest.raises(Exception, match="closed|UPDATE refused"), \
            station.catalog.transaction() as s:
        s.execute(text("UPDATE docksession SET battery_percent = NULL WHERE id = 's1'"))
    with Session(station.catalog.engine) as s:
        assert s.get(DockSession, "open") is None
        s1 = s.get(DockSession, "s1")
        assert s1 is not None and s1.battery_percent == 64


def test_a_unit_bound_user_sees_their_unit_and_the_store(station: Services) -> None:
    report = equipment(station).report(station.gate().by_name("westsup"), idle_days=7)
    assert [c.serial for c in report.cameras] == ["C1", "C3", "C4"]
    assert [u.unit for u in report.units] == ["城西中队"]


def test_holder_over_time(station: Services) -> None:
    rows = equipment(station).history(station.gate().by_name("inspector"), "C1")
    assert [(r.officer_id, r.valid_from) for r in rows] == [("P001", d(11, 1)),
                                                             ("P003", d(12, 5))]
    held = holder_at(rows, d(12, 4))
    assert held is not None and held.officer_id == "P001"
    assert holder_at(rows, d(10, 31)) is None


def test_assignments_are_refused_when_wrong_and_audited(station: Services) -> None:
    desk, gate = equipment(station), station.gate()
    admin = gate.by_name("admin")
    with pytest.raises(Forbidden):
        desk.assign(gate.by_name("clerk"), "C4", officer="P001", valid_from=d(12, 9))
    with pytest.raises(Forbidden):
        desk.report(gate.by_name("officer"), idle_days=7)
    with pytest.raises(NotFound):
        desk.assign(admin, "NOPE", officer="P001", valid_from=d(12, 9))
    with pytest.raises(InvalidRequest, match="no officer"):
        desk.assign(admin, "C4", officer="P999", valid_from=d(12, 9))
    with pytest.raises(InvalidRequest, match="future"):
        desk.assign(admin, "C4", officer="P001", valid_from=NOW + timedelta(days=1))
    # westsup may assign only to officers of 城西中队
    with pytest.raises(Forbidden):
        desk.assign(gate.by_name("westsup"), "C4", officer="P001", valid_from=d(12, 9))
    with Session(station.catalog.engine) as s:
        assert len(s.exec(select(CameraAssignment)).all()) == 6  # none of the above wrote
        events = s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))).all()
    assigned = [e for e in events if e.action == "equipment.assign"]
    assert len(assigned) == 6 and assigned[0].subjects == ["device:C1"]
    assert assigned[4].details["officer"] is None  # C3 back in the store
    refused = [e for e in events if e.action == "access.refused"]
    assert {e.actor for e in refused} >= {"user:clerk", "user:officer", "user:westsup"}
    assert any(e.action == "read.equipment.report" for e in events)


def test_assignment_rows_are_append_only(station: Services) -> None:
    with pytest.raises(Exception, match="append-only"), \
            station.catalog.transaction() as s:
        row = s.exec(select(CameraAssignment)).first()
        assert row is not None
        row.officer_id = "P002"
