"""The center's desk pages in a real browser (zh and en): every station's cases and
recordings, and the witness panel.

Two real stations, each in its own home and catalog: a synthetic camera offloaded through
the real offloader (real ffmpeg, real keys), cases made and linked through ``CaseDesk``
by the agency's users; station A holds a 个人隐私 case of 城东中队 linked to one of its
recordings, station B a case without a label of 城西中队. Their whole audit logs (as
`evidock witness push` would send them, ``AuditLog.export``) are handed to the center's
real ``Feed.receive``, which checks order, chain and every leaf and folds the events into
the central index in the same transaction; each station's signed head is then judged and
countersigned by the center's real ``WitnessDesk.submit``. One boundary is replaced: the
object store, with ``check_blob=lambda blob: None`` (every blob the events name counts as
uploaded). That check and the HTTP push are what tests/replica/test_center_feed.py covers
with real SeaweedFS and three services over mutual TLS; these pages read only the index
and the witness book, so an in-process feed builds the same rows in seconds. An edited
copy of an event station B had already pushed is then handed in too: the center keeps it
as a fork (a conflict), which the panel counts.

The center is served by a real `evidock serve` (its config has ``[[witness.stations]]``)
and so is station A (which has none: no center in its menu). What is checked: the clerk
(every unit, cleared for 个人隐私) sees both stations' cases and recordings, filters them
by station, officer and case; clerk2 (城西中队, no clearance) sees neither A's case nor
the recording linked to it, and no count gives them away; the supervisor (audit.view)
sees the witness panel, its heads and conflicts; each page view is its user's
``read.center.cases`` / ``read.center.recordings`` event naming only what was shown.
Screenshots: test-artifacts/desk/<lang>/center-*.png.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from desk_support import PASSWORDS, DeskStation, log_in, need_browser, set_passwords, shot
from evidock_testing import StepClock, write_agency_config
from service_support import audit_rows, serving
from sqlmodel import Session, select

from archive.audit.rows import build_row
from archive.witness.feed import Feed
from archive.witness.index import CentralCase
from archive.witness.mirror import Incoming, parse_event
from config import load_settings
from evidock.web import i18n
from evidock.web.base import local_time
from evidock.wiring import Services
from fixtures.camera import build_camera
from fixtures.media import ClipSpec
from ingest.outcome import OffloadRequest
from integrity.errors import LogFork

T = {"zh": i18n.words("zh").gettext, "en": i18n.words("en").gettext}
LANGS = ("zh", "en")
CASE_A = "城东〔2026〕31号"  # station A, 城东中队, 个人隐私, linked to A's first video
CASE_B = "城西〔2026〕32号"  # station B, 城西中队, no label, linked to B's first video
#: (camera serial, officer) of each station's camera.
CAMERAS = {"station-a": ("ZFY0001", "123456"), "station-b": ("DSJ0002", "654321")}
CLIPS = (ClipSpec(duration_s=2.0, height=240), ClipSpec(duration_s=2.0, height=240))
SERVICE = "\n[service]\nlogin_attempts_per_minute = 30\n"
USERS = ("clerk", "clerk2", "supervisor")


@dataclass(frozen=True)
class Center:
    desk: DeskStation  # the center's `evidock serve`
    station_a: DeskStation  # station A's own service (no witness config)
    recordings: dict[str, list[str]]  # station → its recordings' ids
    linked: dict[str, str]  # station → the recording linked to its case
    case_ids: dict[str, str]  # case number → its id at its station
    heads: dict[str, int]  # station → size of the head the center countersigned
    created: dict[str, str]  # case number → its creation as the center's desk shows it


def _station(root: Path, name: str, start: datetime) -> dict[str, Any]:
    """A station that offloaded its camera and made its case; its events and head."""
    serial, officer = CAMERAS[name]
    camera = build_camera(root / f"camera-{name}", serial=serial, officer=officer,
                          start=start, clips=CLIPS, audio=False, photo=False)
    home = root / name
    write_agency_config(home, f'{SERVICE}\n[station]\nid = "{name}"\n')
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(start + timedelta(hours=3)))
    try:
        svc.keys.init()
        report = svc.offloader().run(OffloadRequest(source=camera.root, device_serial=serial,
                                                    officer_id=officer))
        assert report.outcome == "completed", report.outcome
        recordings = sorted(svc.catalog.recordings(), key=lambda r: r.ingested_at)
        video = next(r.id for r in recordings if r.kind == "video")
        desk = svc.cases()
        if name == "station-a":
            case = desk.create(svc.gate().by_name("clerk"), number=CASE_A, case_type="行政检查",
                               unit="城东中队", title="个人信息核查", sensitivity="个人隐私")
        else:
            case = desk.create(svc.gate().by_name("clerk2"), number=CASE_B,
                               case_type="行政处罚", unit="城西中队", title="占道经营")
        desk.link(svc.gate().by_name("clerk" if name == "station-a" else "clerk2"),
                  case.number, video, stage="现场检查", reason="现场录像")
        audit = svc.audit()
        head = audit.current_head(at=svc.clock())
        events = [parse_event(d) for d in audit.export(0, 100_000)]
        shutil.copy(svc.keys.keyring_path, root / "witness" / f"{name}.json")
    finally:
        svc.close()
    return {"home": home, "events": events, "head": head, "case": case,
            "recordings": [r.id for r in recordings], "video": video}


def _center_toml(root: Path) -> str:
    users = "".join(f'\n[[access.users]]\nname = "{n}"\nroles = ["station"]\n'
                    for n in CAMERAS)
    stations = "".join(f'\n[[witness.stations]]\nid = "{n}"\n'
                       f'keyring = "{root / "witness" / f"{n}.json"}"\n' for n in CAMERAS)
    return users + SERVICE + '\n[station]\nid = "center"\n' + stations


def _edited(event: Incoming) -> Incoming:
    """The same event with one detail changed and its leaf recomputed: the station's log
    rewritten below what it had pushed."""
    spec = replace(event.spec, details={**event.spec.details, "note": "edited"})
    return replace(event, spec=spec, leaf=build_row(event.seq, event.prev, spec).leaf)


def _feed_and_witness(home: Path, made: dict[str, dict[str, Any]],
                      ) -> tuple[dict[str, int], dict[str, str]]:
    """The stations' events kept and indexed, their heads countersigned, B's fork kept;
    returns the heads' sizes and each case's creation as the center's desk shows it."""
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        svc.keys.init()
        feed, witness, heads = Feed(audit=svc.audit()), svc.witness(), {}
        for name, station in made.items():
            # The object store is the boundary replaced here (see the module docstring).
            kept = feed.receive(name, station["events"], check_blob=lambda blob: None,
                                actor=f"user:{name}", at=svc.clock())
            assert kept.kept == len(station["events"]) and kept.waiting is None
            answer = witness.submit(svc.gate().by_name(name), name,
                                    station["head"].to_dict(), None)
            heads[name] = answer["cosigned"]["head"]["size"]
        with pytest.raises(LogFork):
            feed.receive("station-b", [_edited(made["station-b"]["events"][5])],
                         check_blob=lambda blob: None, actor="user:station-b",
                         at=svc.clock())
        zone = svc.settings.station.local_zone
        with Session(svc.catalog.engine) as s:
            created = {c.number: local_time(c.created_at, zone, seconds=False)
                       for c in s.exec(select(CentralCase))}
    finally:
        svc.close()
    return heads, created


@pytest.fixture(scope="module")
def center(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Center]:
    need_browser()
    root = tmp_path_factory.mktemp("desk-center")
    (root / "witness").mkdir()
    start = datetime.now(UTC) - timedelta(days=1)
    made = {name: _station(root, name, start + timedelta(hours=i))
            for i, name in enumerate(CAMERAS)}
    home = root / "center"
    write_agency_config(home, _center_toml(root))
    heads, created = _feed_and_witness(home, made)
    set_passwords(home, {u: PASSWORDS[u] for u in USERS})
    set_passwords(made["station-a"]["home"], {"clerk": PASSWORDS["clerk"]})
    with ExitStack() as stack:
        served = stack.enter_context(serving(home, listen="127.0.0.1:0"))
        station = stack.enter_context(serving(made["station-a"]["home"],
                                              listen="127.0.0.1:0"))
        yield Center(
            desk=DeskStation(svc=served, home=home, recordings=()),
            station_a=DeskStation(svc=station, home=made["station-a"]["home"],
                                  recordings=()),
            recordings={n: m["recordings"] for n, m in made.items()},
            linked={n: m["video"] for n, m in made.items()},
            case_ids={m["case"].number: m["case"].id for m in made.values()},
            heads=heads, created=created)


def _rows(page: Any, testid: str) -> list[dict[str, str]]:
    """Each row of a list: its data attributes and its cells' text."""
    return page.evaluate(f"""() => [...document.querySelectorAll(
        '[data-testid={testid}] tbody tr')].map(tr => ({{...tr.dataset,
        cells: [...tr.cells].map(td => td.innerText.trim())}}))""")


def _events_of(center: Center, action: str, user: str) -> list[Any]:
    return [e for e in audit_rows(center.desk.home, action) if e.actor == f"user:{user}"]


def _search(page: Any, form: str, **fields: str) -> None:
    for name, value in fields.items():
        if name == "station":
            page.select_option(f"form[data-testid={form}] select[name=station]", value)
        else:
            page.fill(f"form[data-testid={form}] input[name={name}]", value)
    page.click(f"form[data-testid={form}] button[type=submit]")
    page.wait_for_load_state()


@pytest.mark.parametrize("lang", LANGS)
def test_the_clerk_sees_every_stations_cases_and_recordings(chromium: Any, center: Center,
                                                            lang: str) -> None:
    _ = T[lang]
    page = log_in(chromium, center.desk, "clerk", lang=lang)
    nav = page.locator("header nav a", has_text=_("Center"))
    assert nav.get_attribute("href") == "/desk/center"
    before = len(_events_of(center, "read.center.cases", "clerk"))
    nav.click()
    page.wait_for_url("**/desk/center/cases")
    cases = {r["case"]: r for r in _rows(page, "center-cases")}
    assert set(cases) == {CASE_A, CASE_B}
    assert cases[CASE_A]["cells"] == ["station-a", CASE_A, "行政检查", "城东中队", "个人隐私",
                                      center.created[CASE_A]]
    assert cases[CASE_B]["cells"] == ["station-b", CASE_B, "行政处罚", "城西中队",
                                      _("not classified"), center.created[CASE_B]]
    assert page.get_by_test_id("center-count").inner_text() == (
        "2 件案件" if lang == "zh" else "2 cases")
    assert page.get_by_test_id("witness-slot").count() == 0  # no audit.view
    assert _("Witnessed logs") not in page.get_by_test_id("center-tabs").inner_text()
    shot(page, lang, "center-cases")
    seen = _events_of(center, "read.center.cases", "clerk")[before:]
    assert len(seen) == 1 and sorted(seen[0].subjects) == sorted(
        f"case:{center.case_ids[n]}" for n in (CASE_A, CASE_B))

    _search(page, "center-case-search", station="station-b")
    assert [r["case"] for r in _rows(page, "center-cases")] == [CASE_B]
    _search(page, "center-case-search", station="", number=CASE_A)
    assert [r["case"] for r in _rows(page, "center-cases")] == [CASE_A]

    page.click(f"[data-testid=center-cases] a:has-text('{CASE_A}')")  # its recordings
    page.wait_for_url("**/desk/center/recordings?**")
    [linked] = _rows(page, "center-recordings")
    assert linked["recording"] == center.linked["station-a"]
    page.goto(f"{center.desk.url}/center/recordings")
    rows = _rows(page, "center-recordings")
    every = {r for ids in center.recordings.values() for r in ids}
    assert {r["recording"] for r in rows} == every
    by_id = {r["recording"]: r for r in rows}
    a = by_id[center.linked["station-a"]]["cells"]
    assert a[0] == "station-a" and a[1] == center.linked["station-a"][:12]
    assert a[2:4] == ["123456", "ZFY0001"] and a[-1] == CASE_A
    assert a[6].startswith(_("ingested")) and re.fullmatch(r"\d+\.\d (kB|MB)", a[5])
    assert by_id[center.linked["station-b"]]["cells"][-1] == CASE_B
    assert page.get_by_test_id("center-count").inner_text() == (
        f"{len(every)} 段录像" if lang == "zh" else f"{len(every)} recordings")
    shot(page, lang, "center-recordings")
    _search(page, "center-recording-search", officer="654321")
    assert {r["recording"] for r in _rows(page, "center-recordings")} == set(
        center.recordings["station-b"])
    _search(page, "center-recording-search", officer="", station="station-a")
    assert {r["recording"] for r in _rows(page, "center-recordings")} == set(
        center.recordings["station-a"])
    assert page.desk_errors == []
    page.context.close()


@pytest.mark.parametrize("lang", LANGS)
def test_clerk2_sees_neither_the_private_case_nor_its_recording(chromium: Any,
                                                                center: Center,
                                                                lang: str) -> None:
    _ = T[lang]
    hidden = center.linked["station-a"]
    page = log_in(chromium, center.desk, "clerk2", lang=lang)
    cases_before = len(_events_of(center, "read.center.cases", "clerk2"))
    page.goto(f"{center.desk.url}/center/cases")
    assert [r["case"] for r in _rows(page, "center-cases")] == [CASE_B]
    assert page.get_by_test_id("center-count").inner_text() == (
        "1 件案件" if lang == "zh" else "1 case")
    assert CASE_A not in page.content()
    shot(page, lang, "center-cases-clerk2")
    page.goto(f"{center.desk.url}/center/cases?number={CASE_A}")  # asked by its number
    assert page.get_by_test_id("center-count").inner_text() == (
        "0 件案件" if lang == "zh" else "0 cases")
    assert page.locator(".notice").inner_text() == _("No case matches.")

    recs_before = len(_events_of(center, "read.center.recordings", "clerk2"))
    page.goto(f"{center.desk.url}/center/recordings")
    shown = {r["recording"] for r in _rows(page, "center-recordings")}
    every = {r for ids in center.recordings.values() for r in ids}
    assert shown == every - {hidden}
    assert hidden not in page.content() and hidden[:12] not in page.content()
    assert CASE_A not in page.content()
    assert page.get_by_test_id("center-count").inner_text() == (
        f"{len(shown)} 段录像" if lang == "zh" else f"{len(shown)} recordings")
    shot(page, lang, "center-recordings-clerk2")
    page.goto(f"{center.desk.url}/center/recordings?case={CASE_A}")
    assert _rows(page, "center-recordings") == []
    assert page.locator(".notice").inner_text() == _("No recording matches.")
    assert page.desk_errors == []
    page.context.close()

    # Each view was one read event of clerk2's, naming only what was shown.
    cases = _events_of(center, "read.center.cases", "clerk2")[cases_before:]
    assert [(e.subjects, e.details["count"]) for e in cases] == [
        ([f"case:{center.case_ids[CASE_B]}"], 1), ([], 0)]
    recordings = _events_of(center, "read.center.recordings", "clerk2")[recs_before:]
    assert len(recordings) == 2
    assert sorted(recordings[0].subjects) == sorted(f"recording:{r}" for r in shown)
    assert recordings[1].subjects == [] and recordings[1].details["case"] == CASE_A


@pytest.mark.parametrize("lang", LANGS)
def test_the_supervisor_sees_how_each_log_is_witnessed(chromium: Any, center: Center,
                                                       lang: str) -> None:
    _ = T[lang]
    page = log_in(chromium, center.desk, "supervisor", lang=lang)
    latest_before = len(_events_of(center, "read.witness.latest", "supervisor"))
    page.goto(f"{center.desk.url}/center/cases")
    panel = page.get_by_test_id("witness-panel")  # htmx loads it into the page
    panel.wait_for()
    rows = {r["station"]: r for r in _rows(page, "witness-table")}
    assert set(rows) == {"station-a", "station-b"}
    for name, size in center.heads.items():
        assert rows[name]["cells"][1] == str(size)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", rows[name]["cells"][3])
    assert [rows[n]["cells"][-1] for n in ("station-a", "station-b")] == ["0", "1"]
    assert len(_rows(page, "center-cases")) == 2
    shot(page, lang, "center-cases-witness")
    page.click(f"[data-testid=center-tabs] a:has-text('{_('Witnessed logs')}')")
    page.wait_for_url("**/desk/center/witness")
    assert [r["station"] for r in _rows(page, "witness-table")] == ["station-a", "station-b"]
    shot(page, lang, "center-witness")
    assert page.desk_errors == []
    page.context.close()
    latest = _events_of(center, "read.witness.latest", "supervisor")[latest_before:]
    assert sorted(e.subjects[0] for e in latest) == ["station:station-a", "station:station-a",
                                                      "station:station-b", "station:station-b"]


def test_a_station_without_witnesses_has_no_center(chromium: Any, center: Center) -> None:
    page = log_in(chromium, center.station_a, "clerk", lang="zh")
    assert page.locator("header nav a").count() > 0
    assert page.locator("header nav a[href='/desk/center']").count() == 0
    assert T["zh"]("Center") not in page.locator("header nav").inner_text()
    assert T["zh"]("Center") not in page.locator("main").inner_text()  # nor a home tile
    answer = page.goto(f"{center.station_a.url}/center/cases")
    assert answer is not None and answer.status == 404
    assert T["zh"]("This service is not a center: it witnesses no station.") in \
        page.content()
    page.context.close()
    # and the center's own home page offers the area
    page = log_in(chromium, center.desk, "clerk2", lang="en")
    assert page.locator("main .tiles a[href='/desk/center']").inner_text() == "Center"
    page.context.close()
