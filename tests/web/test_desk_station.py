"""The station page in a real browser (zh and en): a real dock daemon offloads a camera
docked in a watched folder while the page is open, and the bay's row changes without
a reload (paused mid-copy by the test hook: "offloading", then "done" with every file);
the camera and officer whose last offload is older than 24 h are listed as overdue, the
freshly offloaded ones are not; a user without ``equipment.view`` is not shown the
report."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from desk_support import PASSWORDS, DeskStation, log_in, set_passwords, shot
from evidock_testing import StepClock, station_on, write_agency_config
from playwright.sync_api import expect
from service_support import serving

from config import load_settings
from evidock.web import i18n
from evidock.web.pages.station import KINDS, OUTCOMES, STATES
from evidock.wiring import Services
from fixtures.camera import build_camera
from fixtures.media import ClipSpec
from ingest.outcome import OffloadRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docks"))
from dockutil import Daemon, Hooks  # noqa: E402

T = {"zh": i18n.words("zh").gettext, "en": i18n.words("en").gettext}
#: Docked live: one camera per language, each its own serial and officer.
LIVE = {"zh": ("DSJ0002", "654321"), "en": ("DSJ0003", "765432")}
CLIP = (ClipSpec(duration_s=2.0, height=360),)


@dataclass(frozen=True)
class DockStation:
    desk: DeskStation
    toml: Path
    cameras: dict[str, Path]
    root: Path


def _dock_toml(root: Path) -> Path:
    lines = ["[dock]", 'sources = ["folder"]', "settle_s = 0.2",
             "process_after_offload = false", 'wipe = "remote"']
    for n in (1, 2):
        lines += ["[[dock.bays]]", f"number = {n}", f'folder = "{root / f"bay{n}"}"']
    path = root / "dock.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dock_station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockStation]:
    """A station of its own: ZFY0001 of officer 123456 offloaded three days ago (so
    both are overdue), served with the dock config the daemon reads."""
    root = tmp_path_factory.mktemp("desk-station")
    long_ago = datetime.now(UTC) - timedelta(days=3)
    old = build_camera(root / "old", start=long_ago, clips=CLIP, audio=False)
    home = root / "home"
    write_agency_config(home, "[service]\nlogin_attempts_per_minute = 20\n")
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(long_ago))
    try:
        report = svc.offloader().run(OffloadRequest(source=old.root, device_serial="ZFY0001",
                                                    officer_id="123456"))
    finally:
        svc.close()
    assert report.outcome == "completed"
    set_passwords(home, {u: PASSWORDS[u] for u in ("inspector", "clerk")})
    cameras = {lang: build_camera(root / f"cam-{serial}", serial=serial, officer=officer,
                                  start=datetime.now(UTC) - timedelta(hours=2), clips=CLIP,
                                  audio=False).root
               for lang, (serial, officer) in LIVE.items()}
    toml = _dock_toml(root)
    with serving(home, listen="127.0.0.1:0", env={"EVIDOCK_DOCK_CONFIG": str(toml)}) as svc_:
        yield DockStation(desk=DeskStation(svc=svc_, home=home, recordings=()), toml=toml,
                          cameras=cameras, root=root)


def _dock(station: DockStation, lang: str, bay: int) -> None:
    """Copy the camera beside the bay's folder and rename it in (it appears whole)."""
    serial = LIVE[lang][0]
    staging = station.root / f"bay{bay}" / f".incoming-{serial}"
    shutil.copytree(station.cameras[lang], staging)
    os.rename(staging, station.root / f"bay{bay}" / serial)


# In Chinese only: test_overdue_lists_the_camera_and_officer_past_24_hours
# shows this page in English.
@pytest.mark.parametrize("lang", ["zh"])
def test_a_bay_updates_live_while_a_camera_is_offloaded(
        chromium: Any, dock_station: DockStation, lang: str, tmp_path: Path) -> None:
    _ = T[lang]
    bay = 1 if lang == "zh" else 2
    serial, officer = LIVE[lang]
    hooks = Hooks(tmp_path / "hooks", "mid_copy:1")
    daemon = Daemon(home=dock_station.desk.home, dock_toml=dock_station.toml,
                    env=hooks.env()).ready()
    try:
        page = log_in(chromium, dock_station.desk, "inspector", lang=lang)
        page.goto(f"{dock_station.desk.url}/station")
        row = page.get_by_test_id(f"bay-{bay}")
        expect(row).to_contain_text(_(STATES["idle"]))
        expect(page.get_by_test_id("bays")).to_contain_text(_("The dock daemon is running."))
        page.evaluate("window.stationMark = 'same page'")  # gone if the page reloads

        _dock(dock_station, lang, bay)
        assert hooks.wait_paused() == "mid_copy"  # the daemon holds the copy here
        expect(row).to_contain_text(_(STATES["offloading"]), timeout=15_000)
        expect(row).to_contain_text(serial)
        expect(row).to_contain_text(officer)
        shot(page, lang, "station-live")

        hooks.reply("go")
        daemon.wait_event("done", bay=str(bay))
        expect(row).to_contain_text(_(STATES["done"]), timeout=15_000)
        expect(row).to_contain_text(_(OUTCOMES["completed"]))
        files = row.locator("td").nth(4).inner_text()
        done, total = files.split("/")
        assert done == total and int(total) >= 1, files
        assert page.evaluate("window.stationMark") == "same page", "updated without reload"
        assert page.desk_errors == []
        page.context.close()
    finally:
        assert daemon.terminate() == 0
        hooks.close()
        # Undocked, so the next daemon does not resume offloading this camera.
        shutil.rmtree(dock_station.root / f"bay{bay}" / serial, ignore_errors=True)


# In English only: test_a_bay_updates_live_while_a_camera_is_offloaded
# shows this page in Chinese.
@pytest.mark.parametrize("lang", ["en"])
def test_overdue_lists_the_camera_and_officer_past_24_hours(
        chromium: Any, dock_station: DockStation, lang: str) -> None:
    _ = T[lang]
    page = log_in(chromium, dock_station.desk, "inspector", lang=lang)
    page.goto(f"{dock_station.desk.url}/station")
    camera = page.get_by_test_id("overdue-camera-ZFY0001")
    expect(camera).to_contain_text(_(KINDS["camera"]))
    expect(camera).to_contain_text(_(OUTCOMES["completed"]))
    hours = float(camera.locator("td").nth(3).inner_text())
    assert 24 < hours < 24 * 3 + 1, hours
    expect(page.get_by_test_id("overdue-officer-123456")).to_contain_text(_(KINDS["officer"]))
    # Offloaded just now (by the live test, if it ran) or never seen: not listed as late.
    for serial, officer in LIVE.values():
        expect(page.get_by_test_id(f"overdue-camera-{serial}")).to_have_count(0)
        expect(page.get_by_test_id(f"overdue-officer-{officer}")).to_have_count(0)
    shot(page, lang, "station")
    assert page.desk_errors == []
    page.context.close()

    clerk = log_in(chromium, dock_station.desk, "clerk", lang=lang)
    clerk.goto(f"{dock_station.desk.url}/station")
    expect(clerk.get_by_test_id("overdue-hidden")).to_be_visible()
    expect(clerk.get_by_test_id("bays")).to_be_visible()
    assert "ZFY0001" not in clerk.locator("main").inner_text().split(_("Overdue for offload"))[1]
    assert clerk.desk_errors == []
    clerk.context.close()


def test_every_state_outcome_and_kind_has_its_chinese() -> None:
    table = i18n.catalog("zh")
    words = [*STATES.values(), *OUTCOMES.values(), *KINDS.values()]
    assert [w for w in words if not table.get(w)] == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_overdue_page_answers_as_the_dock_report_does(tmp_path: Path, database: str) -> None:
    """records/desk_station.py gives docks.overdue.overdue's rows, in its order, page by
    page: finished long ago, just now, finished then failed since, only interrupted,
    never docked, sessions without an officer. On SQLite and on PostgreSQL alike, in
    Python's (code point) order whatever the database's collation."""
    from sqlmodel import Session

    from archive.catalog import Device, DockSession, Officer
    from docks.overdue import overdue
    from records.desk_station import overdue_page

    now = datetime.now(UTC).replace(microsecond=0)
    ago = [now - timedelta(hours=h) for h in (72, 1, 30, 2)]
    sessions = [("A1", "100001", ago[0], "completed"), ("B2", "100002", ago[1], "findings"),
                ("C3", "100003", ago[0], "completed"), ("C3", "100003", ago[1], "failed"),
                ("E5", "100005", ago[2], "interrupted"), ("F6", None, ago[3], "completed"),
                ("G7", "100007", ago[2], None)]
    with station_on(database, tmp_path / "home") as svc:
        catalog = svc.catalog
        if database == "postgresql":
            # An agency's cluster sorts text by its locale (zh_CN, en_US, ICU), not by
            # code point as this throwaway "C" cluster does ("b9" before "C3"): the ids
            # get such a collation, as a database made under that locale has.
            with catalog.engine.begin() as conn:
                for table, column in (("device", "serial"), ("officer", "police_number")):
                    conn.exec_driver_sql(f'ALTER TABLE {table} ALTER COLUMN {column} '
                                         f'TYPE varchar COLLATE "und-x-icu"')
        with Session(catalog.engine) as s:
            for serial in ("A1", "B2", "C3", "D4", "E5", "F6", "G7", "b9"):
                s.add(Device(serial=serial, camera_model="generic-dcim", first_seen=ago[0]))
            for number in ("100001", "100002", "100003", "100004", "100005", "100007"):
                s.add(Officer(police_number=number, first_seen=ago[0]))
            s.commit()
            for n, (serial, officer, start, outcome) in enumerate(sessions):
                s.add(DockSession(id=f"s{n}", station_id="station-01", device_serial=serial,
                                  officer_id=officer, camera_model="generic-dcim", source="/x",
                                  started_at=start, outcome=outcome,
                                  ended_at=start + timedelta(minutes=5) if outcome else None))
            s.commit()
        gate, who = svc.gate(), svc.gate().by_name
        for window in (timedelta(hours=24), timedelta(hours=1, minutes=30)):
            want = [r.to_json() for r in overdue(catalog, now=now, window=window)]
            for limit in (1, 4, 50):
                got, offset = [], 0
                while True:
                    page = overdue_page(catalog, gate, who("inspector"), now=now,
                                        window=window, offset=offset, limit=limit)
                    assert page.total == len(want)
                    if not page.rows:
                        break
                    got += page.rows
                    offset += limit
                assert got == want, (window, limit)
        assert {r["id"] for r in want} >= {"A1", "C3", "D4", "E5", "G7", "b9", "100004"}
        with pytest.raises(Exception) as refused:
            overdue_page(catalog, gate, who("clerk"), now=now, window=window)
        assert getattr(refused.value, "code", "") == "E_FORBIDDEN"
