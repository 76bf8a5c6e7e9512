"""One time convention, through a real `evidock serve` and the users' own OS accounts: a
recording made at 09:00 in the station's zone (Asia/Shanghai) is shown as
``2026-12-01 09:00:00+08:00`` by every command people read (case find/show, coverage,
export show, audit events, hold list, retention pending), and its ``--json`` carries
``2026-12-01T09:00:00+08:00``; the catalog keeps UTC; the audit event's recorded details
are never re-zoned. A station may name another zone (``station.timezone``) while its
cameras keep theirs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import ok_json, open_services, write_agency_config
from service_support import RunningService, audit_events, serving
from stats_support import footage, local

from config import load_settings
from evidock.cmd_audit import finding_line
from evidock.output import rezone_text, show_time, zone_times

CASE = "邵城管罚〔2026〕第009号"
HUMAN = "2026-12-01 09:00:00+08:00"
ISO = "2026-12-01T09:00:00+08:00"
CST = timezone(timedelta(hours=8))


@dataclass
class Station:
    svc: RunningService
    export_id: str

    def human(self, *args: str, user: str, code: int = 0) -> str:
        run = self.svc.cli(*args, user=user)
        assert run.returncode == code, (args, run.stdout, run.stderr)
        return run.stdout

    def json(self, *args: str, user: str, code: int = 0) -> Any:
        return ok_json(self.svc.cli(*args, "--json", user=user), code)


def _footage(home: Path) -> None:
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        footage(svc, "rec-0900", start=local(2026, 12, 1, 9, 0),
                offloaded=local(2026, 12, 1, 10, 0), seconds=60, officer="123456")
        # Old and unlinked: due for deletion, so `retention pending` has a row.
        footage(svc, "rec-old", start=local(2019, 3, 5, 9, 0),
                offloaded=local(2019, 3, 5, 10, 0), seconds=60, officer="123456")
    finally:
        svc.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("times") / "home"
    write_agency_config(home)
    _footage(home)
    with serving(home) as svc:
        st = Station(svc=svc, export_id="")
        st.json("case", "create", CASE, "--type", "行政处罚", "--unit", "城东中队",
                user="clerk")
        st.json("case", "link", CASE, "rec-0900", "--stage", "现场检查", "--reason", "现场",
                user="clerk")
        # Zone-less input is the station's local time, as the written record gives it.
        st.json("case", "stage", CASE, "现场检查", "--start", "2026-12-01T09:00:00",
                "--end", "2026-12-01T09:01:00", user="clerk")
        st.export_id = st.json("export", "request", "--purpose", "行政复议", "--recipient",
                               "复议机关", "--case", CASE, "--reason", "复议",
                               user="clerk")["id"]
        st.json("hold", "add", "--case", CASE, "--reason", "诉讼", user="legal")
        st.json("retention", "schedule", user="admin")
        yield st


def _local_now_like(text: str, *, later: timedelta = timedelta(0)) -> datetime:
    """A time the service stamped "now" (+ ``later``): in +08:00, within the test's run."""
    when = datetime.fromisoformat(text)
    assert when.utcoffset() == timedelta(hours=8), text
    assert abs(datetime.now(UTC) + later - when) < timedelta(hours=1), text
    return when


# ------------------------------------------------------------------ the formatter


@pytest.mark.parametrize(("value", "zone", "shown"), [
    ("2026-12-01T01:00:00+00:00", CST, HUMAN),
    ("2026-12-01T01:00:00.000000Z", CST, HUMAN),  # the audit log's own format
    (datetime(2026, 12, 1, 1, 0, 0, 123456), CST, HUMAN),  # naive from the catalog: UTC
    ("2026-12-01T09:00:00+08:00", None, HUMAN),  # already zoned: kept
    ("2026-12-01T09:00:00+08:00", UTC, "2026-12-01 01:00:00+00:00"),
    (None, CST, ""),
])
def test_show_time_is_the_station_zone_with_its_offset(
        value: datetime | str | None, zone: timezone | None, shown: str) -> None:
    assert show_time(value, zone) == shown


def test_zone_times_rezones_instants_but_not_words_or_recorded_details() -> None:
    answer = {"at": "2026-12-01T01:00:00Z", "rows": [{"camera_start": "2026-12-01T01:00:00"
                                                                        "+00:00"}],
              "reason": "2026-12-01T01:00:00Z", "title": "x 2026-12-01T01:00:00Z",
              "details": {"start_at": "2026-12-01T01:00:00+00:00"}, "day": "2026-12-01",
              "n": 3}
    assert zone_times(answer, CST) == {
        "at": ISO, "rows": [{"camera_start": ISO}], "reason": "2026-12-01T01:00:00Z",
        "title": "x 2026-12-01T01:00:00Z",
        "details": {"start_at": "2026-12-01T01:00:00+00:00"}, "day": "2026-12-01", "n": 3}


# ------------------------------------------------------------------ every command


def test_catalog_keeps_utc(station: Station) -> None:
    db = sqlite3.connect(station.svc.home / "catalog.sqlite3")
    try:
        [(stored,)] = db.execute("SELECT camera_start FROM recording WHERE id = 'rec-0900'")
    finally:
        db.close()
    assert str(stored).startswith("2026-12-01 01:00:00")  # 09:00 at the station is 01:00 UTC


def test_case_find(station: Station) -> None:
    found = station.json("case", "find", "--case", CASE, user="clerk")["recordings"]
    assert [f["recording"]["camera_start"] for f in found] == [ISO]
    assert HUMAN in station.human("case", "find", "--case", CASE, user="clerk")


def test_case_show(station: Station) -> None:
    dossier = station.json("case", "show", CASE, user="clerk")
    assert [r["camera_start"] for r in dossier["recordings"]] == [ISO]
    assert [(s["start_at"], s["end_at"]) for s in dossier["stages"]] == [
        (ISO, "2026-12-01T09:01:00+08:00")]
    _local_now_like(dossier["case"]["created_at"])
    text = station.human("case", "show", CASE, user="clerk")
    assert HUMAN in text and "2026-12-01 09:01:00+08:00" in text
    assert "01:00:00Z" not in text


def test_case_list_and_recording_show(station: Station) -> None:
    cases = station.json("case", "list", user="clerk")["cases"]
    _local_now_like(cases[0]["created_at"])
    assert "+08:00" in station.human("case", "list", user="clerk")
    shown = station.json("recording", "show", "rec-0900", user="clerk")
    assert shown["recording"]["camera_start"] == ISO
    assert HUMAN in station.human("recording", "show", "rec-0900", user="clerk")


def test_coverage(station: Station) -> None:
    report = station.json("coverage", "--case", CASE, user="legal", code=1)
    footage_ = [f for c in report["cases"] for s in c["stages"] for f in s["footage"]]
    assert [f["start"] for f in footage_] == [ISO]
    assert HUMAN in station.human("coverage", "--case", CASE, user="legal", code=1)


def test_export_show(station: Station) -> None:
    req = station.json("export", "show", station.export_id, user="clerk")
    _local_now_like(req["at"])
    text = station.human("export", "show", station.export_id, user="clerk")
    assert f"at {show_time(req['at'])}" in text and "+08:00" in text


def test_audit_events_at_in_the_station_zone_details_as_recorded(station: Station) -> None:
    page = station.json("audit", "events", "--action", "case.stage", user="supervisor")
    [event] = page["events"]
    _local_now_like(event["at"])
    # What the log recorded (and hashed) is shown exactly as it was written.
    [(_, recorded)] = audit_events(station.svc.home, "case.stage")
    assert event["details"] == recorded
    text = station.human("audit", "events", "--action", "case.stage", user="supervisor")
    assert show_time(event["at"]) in text


def test_hold_list(station: Station) -> None:
    [hold] = station.json("hold", "list", user="legal")["holds"]
    _local_now_like(hold["placed_at"])
    assert show_time(hold["placed_at"]) in station.human("hold", "list", user="legal")


def test_retention_pending(station: Station) -> None:
    pending = station.json("retention", "pending", user="admin")["pending"]
    assert [p["recording_id"] for p in pending] == ["rec-old"]
    due = _local_now_like(pending[0]["due_at"], later=timedelta(days=7))  # grace_days
    text = station.human("retention", "pending", user="admin")
    assert show_time(due) in text and "+08:00" in text


def test_another_station_zone_is_named_and_used(tmp_path: Path) -> None:
    """``station.timezone`` (the station's zone for people) can differ from the cameras'
    zone: the same 09:00 Beijing recording then reads 01:00 UTC, with its offset."""
    home = tmp_path / "home"
    write_agency_config(home, '[station]\nid = "station-01"\ntimezone = "UTC"\n')
    _footage(home)
    with serving(home) as svc:
        st = Station(svc=svc, export_id="")
        found = st.json("case", "find", "--officer", "123456", user="clerk")["recordings"]
        assert {f["recording"]["camera_start"] for f in found} >= {
            "2026-12-01T01:00:00+00:00"}
        assert "2026-12-01 01:00:00+00:00" in st.human("case", "find", "--officer",
                                                       "123456", user="clerk")
        # Zone-less input is read in the zone people use: the station's.
        st.json("case", "create", CASE, "--type", "行政处罚", "--unit", "城东中队",
                user="clerk")
        staged = st.json("case", "stage", CASE, "现场检查", "--start", "2026-12-01T09:00:00",
                         "--end", "2026-12-01T09:01:00", user="clerk")
        assert staged["start_at"] == "2026-12-01T09:00:00+00:00"
        since = st.json("case", "find", "--officer", "123456", "--since",
                        "2026-12-01T01:00:00", user="clerk")["recordings"]
        assert [f["recording"]["id"] for f in since] == ["rec-0900"]


def test_camera_timezone_alone_still_names_the_station_zone() -> None:
    settings = load_settings(environ={"EVIDOCK_STATION__CAMERA_TIMEZONE": "Europe/Paris",
                                      "EVIDOCK_HOME": "/nonexistent"})
    assert settings.station.local_zone_name == "Europe/Paris"
    assert str(settings.station.zone) == "Europe/Paris"


def test_error_messages_show_times_in_the_station_zone(station: Station) -> None:
    error = station.json("case", "close", CASE, "--reason", "结案", "--date",
                         "2026-12-01T08:00:00", user="clerk", code=1)["error"]
    assert error["code"] == "E_INVALID"
    assert "closed at 2026-12-01 08:00:00+08:00" in error["message"], error
    assert "+00:00" not in error["message"]
    run = station.svc.cli("case", "close", CASE, "--reason", "结案", "--date",
                          "2026-12-01T08:00:00", user="clerk")
    assert run.returncode == 1 and "closed at 2026-12-01 08:00:00+08:00" in run.stderr


def test_retention_reasons_read_in_the_station_zone(station: Station) -> None:
    [view] = station.json("retention", "pending", user="admin")["pending"]
    # Kept from its ingest (10:05 at the station), as the rules wrote it (JSON) ...
    assert "from 2019-03-05 02:05 UTC" in view["reason"]
    text = station.human("retention", "pending", user="admin")
    # ... and as people read it.
    assert "from 2019-03-05 10:05:00+08:00" in text and " UTC" not in text
    assert "ended 2019-09-05 10:05:00+08:00" in text


def test_findings_and_rule_reasons_show_their_times_in_the_station_zone() -> None:
    finding = {"code": "E_AUDIT_HEAD", "subject": "head:7",
               "message": "head signed at 2026-12-01T01:00:00.000000Z is not the latest"}
    assert finding_line(finding, CST) == (
        "E_AUDIT_HEAD [head:7]: head signed at 2026-12-01 09:00:00+08:00 is not the latest")
    assert finding_line(finding) == (  # offline (no station): as written
        "E_AUDIT_HEAD [head:7]: head signed at 2026-12-01T01:00:00.000000Z is not the latest")
    assert rezone_text("kept until 2026-12-01 01:00 UTC (id 12026-12-01T01:00:00Z)", CST) == (
        "kept until 2026-12-01 09:00:00+08:00 (id 12026-12-01T01:00:00Z)")
