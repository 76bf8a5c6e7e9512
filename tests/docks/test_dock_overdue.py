"""Upload deadlines from real catalog rows, and the `dock overdue` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import write_agency_config
from service_support import serving
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import DockSession
from docks.overdue import overdue, parse_window
from evidock.wiring import Services

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _session(svc: Services, sid: str, serial: str, officer: str | None, *, hours_ago: float,
             outcome: str, now: datetime = NOW) -> None:
    start = now - timedelta(hours=hours_ago)
    svc.catalog.open_session(DockSession(
        id=sid, station_id="s", device_serial=serial, officer_id=officer,
        camera_model="generic-dcim", source="/x", started_at=start), now=start,
        camera_model="generic-dcim")
    svc.catalog.close_session(sid, outcome=outcome, ended_at=start + timedelta(minutes=5))


def test_overdue_cameras_and_officers(services: Services) -> None:
    _session(services, "a1", "ZFY0001", "111111", hours_ago=30, outcome="completed")
    _session(services, "a2", "ZFY0001", "111111", hours_ago=2, outcome="findings")
    _session(services, "b1", "ZFY0002", "222222", hours_ago=30, outcome="completed")
    _session(services, "b2", "ZFY0002", "222222", hours_ago=1, outcome="interrupted")
    _session(services, "c1", "ZFY0003", None, hours_ago=3, outcome="failed")
    rows = overdue(services.catalog, now=NOW, window=timedelta(hours=24))
    got = {(r.kind, r.id): r for r in rows}
    assert set(got) == {("camera", "ZFY0002"), ("officer", "222222"), ("camera", "ZFY0003")}
    assert got[("camera", "ZFY0002")].last_outcome == "interrupted", "attempts do not count"
    assert got[("camera", "ZFY0002")].age_h == pytest.approx(30 - 5 / 60)
    assert got[("camera", "ZFY0003")].last_offload is None
    wide = overdue(services.catalog, now=NOW, window=timedelta(hours=48))
    assert [(r.kind, r.id) for r in wide] == [("camera", "ZFY0003")]


def test_parse_window() -> None:
    assert parse_window("24h") == timedelta(hours=24)
    assert parse_window("90m") == timedelta(minutes=90)
    assert parse_window("2d") == timedelta(days=2)
    assert parse_window("12") == timedelta(hours=12)
    for bad in ("", "-1h", "0", "1w", "h"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_overdue_command_json(services: Services, home: Path) -> None:
    _session(services, "a1", "ZFY0009", "999999", hours_ago=1, outcome="completed",
             now=datetime.now(UTC))  # the service's clock is the real one
    write_agency_config(home)
    # Offloaded 55 minutes before the real now(): overdue for a 30-minute window.
    with serving(home) as svc:
        late = svc.cli("dock", "overdue", "--json", "--window", "30m", user="supervisor")
        officer = svc.cli("dock", "overdue", "--json", user="officer")
        # The clerk holds coverage.view (its cases' coverage) but not equipment.view.
        clerk = svc.cli("dock", "overdue", "--json", user="clerk")
        human = svc.cli("dock", "overdue", "--window", "30m", user="inspector")
    with Session(services.catalog.engine) as s:
        events = list(s.exec(select(AuditEvent).order_by(col(AuditEvent.seq))))
    reads = [e for e in events if e.action == "read.dock.overdue"]
    refused = [e for e in events if e.action == "access.refused"]
    assert late.returncode == 1, late.stderr
    doc = json.loads(late.stdout)
    assert doc["window_h"] == 0.5
    assert {r["id"] for r in doc["overdue"]} == {"ZFY0009", "999999"}
    assert overdue(services.catalog, now=datetime.now(UTC), window=timedelta(hours=24)) == []
    for no in (officer, clerk):
        assert no.returncode == 3, no.stdout
        assert json.loads(no.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert [(e.actor, e.details["overdue"]) for e in reads] == [("user:supervisor", 2),
                                                                ("user:inspector", 2)]
    assert {(e.actor, e.details["permission"]) for e in refused} == {
        ("user:officer", "equipment.view"), ("user:clerk", "equipment.view")}
    assert human.returncode == 1 and human.stdout.endswith("2 overdue (window 0.5 h)\n")
    assert "ZFY0009" in human.stdout and "999999" in human.stdout
