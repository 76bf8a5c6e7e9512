"""Coverage of the recording list (音像记录事项清单): the pure report, the loader on a
real catalog, and `evidock coverage` as a legal reviewer runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, write_agency_config
from service_support import serving
from sqlmodel import Session, col, select
from stats_support import footage

from archive.audit.log import AuditEvent
from archive.catalog import Recording
from config import load_settings
from config.access import CoverageRequirement, CoverageSettings
from evidock.wiring import Services
from integrity.errors import Forbidden, InvalidRequest, NotFound
from records.casebook import LinkView
from records.coverage import (
    CaseFacts,
    CoverageReport,
    DeclaredStage,
    LinkFacts,
    StageDecision,
    Tally,
    case_finding,
    holes,
    report,
)
from records.coverage_load import CoverageDesk, in_scope, link_facts, load_facts
from records.permissions import Actor

CST = timezone(timedelta(hours=8))
T0 = datetime(2019, 5, 10, 10, 0, tzinfo=CST)  # a stage window opens here
NOW = datetime(2019, 6, 1, tzinfo=CST)

SETTINGS = CoverageSettings(
    requirements=(CoverageRequirement(stage="现场检查"),
                  CoverageRequirement(stage="查封扣押", full_process=True),
                  CoverageRequirement(stage="听证", case_types=("行政处罚",))),
    offload_deadline_h=24, gap_tolerance_s=5)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lk(rid: str, stage: str, start: float | None, end: float | None, *,
       officer: str | None = "O1", offload_h: float = 1.0) -> LinkFacts:
    """Footage of [start, end) minutes after T0 (None: unknown), offloaded after hours."""
    begin = None if start is None else at(start)
    return LinkFacts(recording_id=rid, stage=stage, start=begin,
                     end=None if end is None else at(end), officer_id=officer,
                     recorded_at=begin, offloaded_at=(begin or T0) + timedelta(hours=offload_h))


def facts(*links: LinkFacts, case_type: str = "行政检查", declared: tuple[Any, ...] = (),
          unit: str = "城东中队", number: str = "邵城管检〔2019〕第001号",
          decisions: tuple[StageDecision, ...] = ()) -> CaseFacts:
    return CaseFacts(case_id=f"id-{number}", number=number, case_type=case_type, unit=unit,
                     status="open", declared=tuple(DeclaredStage(s, at(a), at(b))
                                                   for s, a, b in declared), links=links,
                     decisions=decisions)


SEIZE = "查封扣押"
WINDOW = ((SEIZE, 0, 60),)  # declared 10:00–11:00


@dataclass(frozen=True)
class Expect:
    statuses: dict[str, str]
    gaps: list[tuple[str, float, float]] = field(default_factory=list)  # kind, minutes
    late: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    note: str | None = None  # a note of the 查封扣押 stage contains this
    not_required: tuple[str, ...] = ()


BOTH = {"现场检查": "covered", SEIZE: "covered"}
GAPPED = {"现场检查": "covered", SEIZE: "gaps"}  # holes over the tolerance: never covered
CASES: dict[str, tuple[CaseFacts, Expect]] = {
    "covered": (facts(lk("a", "现场检查", 0, 10), lk("b", SEIZE, 0, 60), declared=WINDOW),
                Expect(BOTH)),
    "missing": (facts(lk("a", "现场检查", 0, 10)),
                Expect({"现场检查": "covered", SEIZE: "missing"})),
    "gap inside declared window": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 20), lk("c", SEIZE, 30, 60),
              declared=WINDOW),
        Expect(GAPPED, gaps=[("inside", 20, 30)])),
    "gaps at window start and end": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 5, 55), declared=WINDOW),
        Expect(GAPPED, gaps=[("window_start", 0, 5), ("window_end", 55, 60)])),
    "footage outside the window is clipped": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, -30, 10), lk("c", SEIZE, 50, 90),
              declared=WINDOW),
        Expect(GAPPED, gaps=[("inside", 10, 50)])),
    "holes up to the tolerance ignored": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 5 / 60, 30),
              lk("c", SEIZE, 30 + 5 / 60, 60 - 4 / 60), declared=WINDOW),
        Expect(BOTH)),
    "a hole just over the tolerance is a gap": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 30), lk("c", SEIZE, 30.1, 60),
              declared=WINDOW),
        Expect(GAPPED, gaps=[("inside", 30, 30.1)])),
    "overlapping footage of two officers merges": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 40),
              lk("c", SEIZE, 20, 60, officer="O2"), declared=WINDOW),
        Expect(BOTH)),
    "two declarations are merged into their union": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 60),
              declared=(*WINDOW, (SEIZE, 50, 80))),
        Expect(GAPPED, gaps=[("window_end", 60, 80)])),
    "undeclared window: only holes between footage": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 20), lk("c", SEIZE, 40, 60)),
        Expect(GAPPED, gaps=[("inside", 20, 40)], note="not declared")),
    "case type filter: 听证 required for 行政处罚": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 60), declared=WINDOW,
              case_type="行政处罚"),
        Expect({**BOTH, "听证": "missing"})),
    "case type filter: 听证 footage of a 行政检查 case is not required": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 60), lk("h", "听证", 0, 5),
              declared=WINDOW),
        Expect({**BOTH, "听证": "covered"}, not_required=("听证",))),
    "late offload (one finding per recording, across stages)": (
        facts(lk("a", "现场检查", 0, 1, offload_h=25), lk("a", SEIZE, 0, 60, offload_h=25),
              lk("b", "现场检查", 1, 2, offload_h=23.9), declared=WINDOW),
        Expect(BOTH, late=["a"])),
    "unknown camera time never fills a window": (
        facts(lk("a", "现场检查", 0, 1), lk("u", SEIZE, None, None, offload_h=100),
              declared=WINDOW),
        Expect(GAPPED, gaps=[("window", 0, 60)], unknown=["u"], note="unknown times")),
    "unknown duration never fills time": (
        facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 30), lk("d", SEIZE, 30, None),
              declared=WINDOW),
        Expect(GAPPED, gaps=[("window_end", 30, 60)], unknown=["d"], note="unknown times")),
}


def _minutes(when: datetime) -> float:
    return round((when - T0) / timedelta(minutes=1), 6)


@pytest.mark.parametrize("name", list(CASES))
def test_report_case(name: str) -> None:
    case, want = CASES[name]
    found = case_finding(case, settings=SETTINGS, now=NOW)
    assert {s.stage: s.status for s in found.stages} == want.statuses
    assert tuple(s.stage for s in found.stages if not s.required) == want.not_required
    gaps = [(g.kind, _minutes(g.start), _minutes(g.end)) for s in found.stages for g in s.gaps]
    assert gaps == [(k, round(a, 6), round(b, 6)) for k, a, b in want.gaps]
    assert [x.recording_id for x in found.late] == want.late
    assert list(found.unknown_time) == want.unknown
    seize = next(s for s in found.stages if s.stage == SEIZE)
    if want.note is not None:
        assert any(want.note in n for n in seize.notes), seize.notes
    missing = [s for s, v in want.statuses.items() if v == "missing"]
    assert found.complete == (not missing and not want.gaps)


def test_missing_full_process_stage_is_missing_not_also_a_gap() -> None:
    found = case_finding(facts(declared=WINDOW), settings=SETTINGS, now=NOW)
    assert found.tally() == Tally(cases=1, required=2, covered=0, missing=2, gaps=0)


def test_window_still_open_is_judged_up_to_now() -> None:
    case = facts(lk("a", "现场检查", 0, 1), lk("b", SEIZE, 0, 30), declared=WINDOW)
    found = case_finding(case, settings=SETTINGS, now=at(30))
    seize = found.stages[1]
    assert seize.gaps == () and any("past now" in n for n in seize.notes)
    assert [g.kind for g in case_finding(case, settings=SETTINGS, now=at(40)).stages[1].gaps] \
        == ["window_end"]


def test_holes_edges_and_tolerance() -> None:
    w = (at(0), at(10))
    tol = timedelta(seconds=5)
    assert [g.kind for g in holes(w, [], tol)] == ["window"]
    assert holes(w, [], tol, edges=False) == []
    assert holes((at(0), at(0.05)), [], tol) == []  # 3 s window: under the tolerance
    exact = holes(w, [(at(0), at(5)), (at(5) + tol, at(10))], tol)
    assert exact == []  # a hole of exactly the tolerance is not longer than it


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        LinkFacts(recording_id="x", stage=SEIZE, start=datetime(2019, 5, 10), end=None,
                  officer_id=None, recorded_at=None, offloaded_at=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        report([], settings=SETTINGS, now=datetime(2019, 6, 1))


def _summary_report() -> CoverageReport:
    east1 = facts(lk("a", "现场检查", 0, 1, offload_h=30), lk("b", SEIZE, 0, 20, officer="O2"),
                  lk("c", SEIZE, 30, 60, officer="O2"), declared=WINDOW, number="东〔2019〕1号")
    east2 = facts(lk("d", "现场检查", 0, 1, officer="O2", offload_h=48),
                  lk("u", "现场检查", None, None, officer=None), number="东〔2019〕2号",
                  case_type="行政处罚")
    west = facts(unit="城西中队", number="西〔2019〕1号")
    return report([west, east2, east1], settings=SETTINGS, now=NOW, hidden=2)


def test_summary_per_unit_and_officer_is_derived_from_the_cases() -> None:
    rep = _summary_report()
    assert [c.number for c in rep.cases] == ["东〔2019〕1号", "东〔2019〕2号", "西〔2019〕1号"]
    units = dict(rep.by_unit)
    assert units["城东中队"] == Tally(cases=2, required=5, covered=2, missing=2, gaps=1,
                                    gap_stages=1, late=2, unknown_time=1)
    assert units["城西中队"] == Tally(cases=1, required=2, covered=0, missing=2)
    assert sum(units.values(), Tally()) == rep.total
    officers = dict(rep.by_officer)
    # O1 filmed in case 1 only; O2 in both; None: the west case and the unknown recording.
    assert officers["O1"] == Tally(cases=1, required=2, covered=1, gaps=1, gap_stages=1,
                                   late=1)
    assert officers["O2"] == Tally(cases=2, required=5, covered=2, missing=2, gaps=1,
                                   gap_stages=1, late=1)
    assert officers[None] == Tally(cases=2, required=5, covered=1, missing=4,
                                   unknown_time=1)
    assert [o for o, _ in rep.by_officer] == ["O1", "O2", None]
    assert not rep.complete


def test_to_json_is_plain_json_with_every_finding() -> None:
    out = json.loads(json.dumps(_summary_report().to_json()))
    assert out["hidden"] == 2 and out["complete"] is False
    assert out["total"] == {"cases": 3, "required": 7, "covered": 2, "missing": 4, "gaps": 1,
                            "gap_stages": 1, "not_applicable": 0, "late": 2,
                            "unknown_time": 1}
    first = out["cases"][0]
    seize = next(s for s in first["stages"] if s["stage"] == SEIZE)
    assert seize["gaps"] == [{"start": at(20).isoformat(), "end": at(30).isoformat(),
                              "kind": "inside", "seconds": 600.0}]
    assert first["late"][0]["recording_id"] == "a" and first["late"][0]["delay_h"] == 30
    second = out["cases"][1]
    unknown = next(f for s in second["stages"] for f in s["footage"] if f["recording_id"] == "u")
    assert unknown == {"recording_id": "u", "officer_id": None, "kind": "video", "counts": True,
                       "start": None, "end": None, "time": "camera_time_unknown"}
    assert {"officer_id": "O1", "cases": 1, "required": 2, "covered": 1, "missing": 0,
            "gaps": 1, "gap_stages": 1, "not_applicable": 0, "late": 1,
            "unknown_time": 0} in out["by_officer"]


# ---------------------------------------------------------------------- loader (pure part)


def _view(start_us: int | None = None, end_us: int | None = None) -> LinkView:
    return LinkView(id=1, case_id="c", recording_id="r", stage=SEIZE, start_us=start_us,
                    end_us=end_us, actor="clerk", reason="x", at=T0, removed=None)


def _rec(camera_start: datetime | None) -> Recording:
    return Recording(id="r", session_id="s", device_serial="D", officer_id="O1",
                     original_path=b"r", original_display="r", kind="video", size=1,
                     blake3="0" * 64, sha256="0" * 64, camera_start=camera_start,
                     source_mtime_ns=0, ingested_at=T0, status="ingested")


@pytest.mark.parametrize(("camera", "rng", "duration_s", "want"), [
    (T0, (None, None), 600, (0, 10)),  # whole recording
    (T0, (60, 120), 600, (1, 2)),  # a range
    (T0, (60, None), 600, (1, 10)),  # from an offset to the end
    (T0, (60, 1200), 600, (1, 10)),  # a range past the end is clipped
    (T0, (None, None), None, (0, None)),  # duration unknown
    (T0, (None, 120), None, (0, 2)),  # ...but a range end is enough
    (None, (60, 120), 600, (None, None)),  # camera time unknown
])
def test_link_facts_times(camera: datetime | None, rng: tuple[int | None, int | None],
                          duration_s: int | None, want: tuple[float | None, float | None]
                          ) -> None:
    us = [None if v is None else v * 1_000_000 for v in rng]
    got = link_facts(_view(us[0], us[1]), _rec(camera), offloaded_at=NOW,
                     duration_us=None if duration_s is None else duration_s * 1_000_000)
    minutes = tuple(None if t is None else (t - T0) / timedelta(minutes=1)
                    for t in (got.start, got.end))
    assert minutes == want
    assert got.recorded_at == camera and got.offloaded_at == NOW and got.officer_id == "O1"


# ---------------------------------------------------------------------- on a real catalog

A = "邵城管罚〔2019〕第001号"  # 行政处罚, 城东: 现场检查 covered (one late), 听证 missing
B = "邵城强〔2019〕第002号"  # 行政强制, 城西: 查封扣押 full process with a gap
C = "邵城管检〔2019〕第003号"  # 行政检查, 城东, 个人隐私: complete, duration from probe
EXTRA = """
[[access.users]]
name = "legal_west"
roles = ["legal_reviewer"]
units = ["城西中队"]
clearances = ["个人隐私"]

[coverage]
offload_deadline_h = 24
gap_tolerance_s = 5
[[coverage.requirements]]
stage = "现场检查"
[[coverage.requirements]]
stage = "查封扣押"
full_process = true
case_types = ["行政强制"]
[[coverage.requirements]]
stage = "听证"
case_types = ["行政处罚"]
"""
DAY = datetime(2019, 3, 5, 9, 0, tzinfo=CST)


def _footage(svc: Services, rid: str, *, start: datetime | None, offloaded: datetime,
             duration_s: float | None, officer: str = "100001", segments: bool = True) -> None:
    footage(svc, rid, start=start, offloaded=offloaded, seconds=duration_s, officer=officer,
            segments=segments)


@dataclass
class Station:
    home: Path
    svc: Services

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def desk(self) -> CoverageDesk:
        return CoverageDesk(catalog=self.svc.catalog, gate=self.svc.gate(),
                            settings=self.svc.settings.coverage, clock=self.svc.clock)

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))


def _populate(svc: Services) -> None:
    off = DAY + timedelta(hours=8)
    _footage(svc, "rec-a1", start=DAY, offloaded=off, duration_s=600)
    _footage(svc, "rec-a2", start=DAY - timedelta(hours=30), offloaded=off, duration_s=60,
             officer="100002")  # offloaded 38 h after recording: late
    _footage(svc, "rec-b1", start=DAY, offloaded=off, duration_s=1200)  # 09:00–09:20
    _footage(svc, "rec-b2", start=DAY + timedelta(minutes=30), offloaded=off,
             duration_s=1800, officer="100002")  # 09:30–10:00
    _footage(svc, "rec-b3", start=None, offloaded=off, duration_s=60)  # camera time unknown
    _footage(svc, "rec-c1", start=DAY, offloaded=off, duration_s=300, segments=False)
    _footage(svc, "rec-x", start=DAY, offloaded=off, duration_s=None)  # no rendition yet
    desk, clerk = svc.cases(), svc.gate().by_name("clerk")
    desk.create(clerk, number=A, case_type="行政处罚", unit="城东中队")
    desk.create(clerk, number=B, case_type="行政强制", unit="城西中队")
    desk.create(clerk, number=C, case_type="行政检查", unit="城东中队", sensitivity="个人隐私")
    desk.link(clerk, A, "rec-a1", stage="现场检查", reason="现场")
    desk.link(clerk, A, "rec-a2", stage="现场检查", reason="现场", start_us=0, end_us=30_000_000)
    removed = desk.link(clerk, A, "rec-x", stage="听证", reason="误关联")
    desk.unlink(clerk, removed.id, reason="不是听证录像")
    desk.stage(clerk, B, stage="查封扣押", start_at=DAY, end_at=DAY + timedelta(hours=1))
    desk.link(clerk, B, "rec-b1", stage="查封扣押", reason="查封")
    desk.link(clerk, B, "rec-b2", stage="查封扣押", reason="查封")
    desk.link(clerk, B, "rec-b3", stage="现场检查", reason="检查")
    desk.link(clerk, C, "rec-c1", stage="现场检查", reason="检查")


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    home = tmp_path_factory.mktemp("coverage") / "home"
    write_agency_config(home, EXTRA)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    _populate(svc)
    yield Station(home, svc)
    svc.close()


def test_loader_builds_the_facts_from_active_links(station: Station) -> None:
    book = station.svc.cases().book
    a, b, c = (load_facts(station.svc.catalog, [book.case(n)])[0] for n in (A, B, C))
    assert {f.recording_id for f in a.links} == {"rec-a1", "rec-a2"}  # rec-x was unlinked
    a2 = next(f for f in a.links if f.recording_id == "rec-a2")
    assert (a2.start, a2.end) == (DAY - timedelta(hours=30),
                                  DAY - timedelta(hours=30) + timedelta(seconds=30))
    assert a2.offloaded_at == DAY + timedelta(hours=8)  # the session start, not ingest
    b1 = next(f for f in b.links if f.recording_id == "rec-b1")
    assert b1.end == DAY + timedelta(minutes=20)  # last segment end, not the probe
    assert b.declared == (DeclaredStage("查封扣押", DAY, DAY + timedelta(hours=1)),)
    assert c.links[0].end == DAY + timedelta(seconds=399)  # no segments: probed duration


def test_report_on_the_agency(station: Station) -> None:
    rep = station.desk().run(station.who("legal"))
    assert rep.hidden == 0
    by = {c.number: c for c in rep.cases}
    assert {s.stage: s.status for s in by[A].stages} == {"现场检查": "covered",
                                                         "听证": "missing"}
    assert [x.recording_id for x in by[A].late] == ["rec-a2"]
    assert {s.stage: (s.status, s.full_process) for s in by[B].stages} == {
        "现场检查": ("covered", False), "查封扣押": ("gaps", True)}
    seize = next(s for s in by[B].stages if s.stage == "查封扣押")
    assert [(g.kind, g.start, g.end) for g in seize.gaps] == [
        ("inside", DAY + timedelta(minutes=20), DAY + timedelta(minutes=30))]
    assert by[B].unknown_time == ("rec-b3",)
    assert by[C].complete and not by[A].complete and not by[B].complete
    assert dict(rep.by_unit) == {
        "城东中队": Tally(cases=2, required=3, covered=2, missing=1, late=1),
        "城西中队": Tally(cases=1, required=2, covered=1, gaps=1, gap_stages=1,
                         unknown_time=1)}
    officers = dict(rep.by_officer)
    assert officers["100002"] == Tally(cases=2, required=4, covered=2, missing=1, gaps=1,
                                       gap_stages=1, late=1)
    assert officers["100001"].cases == 3


def test_hidden_cases_are_counted_and_the_read_is_audited(station: Station) -> None:
    west = station.desk().run(station.who("legal_west"))
    assert [c.number for c in west.cases] == [B] and west.hidden == 2
    admin = station.desk().run(station.who("admin"), unit="城东中队")  # no 个人隐私 clearance
    assert [c.number for c in admin.cases] == [A] and admin.hidden == 1
    last = station.events("read.coverage")[-1]
    assert last.actor == "user:admin" and len(last.subjects) == 1
    assert last.details["hidden"] == 1 and last.details["unit"] == "城东中队"
    assert last.details["missing"] == 1


def test_since_selects_cases_created_or_still_active(station: Station) -> None:
    clerk = station.who("clerk")
    desk = station.svc.cases()
    after = station.svc.clock()  # every case was created before this
    view = desk.book.case(C)
    assert in_scope(view, unit=None, since=after)  # open: still active
    # closed just before `after` (never before the case was created: records/closing.py)
    closed = desk.close(clerk, C, reason="结案", closed_at=after - timedelta(seconds=1))
    assert not in_scope(closed, unit=None, since=after)
    assert in_scope(closed, unit="城东中队", since=after - timedelta(days=2))
    assert not in_scope(closed, unit="城西中队", since=None)
    rep = station.desk().run(station.who("legal"), since=after)
    assert sorted(c.number for c in rep.cases) == sorted([A, B])
    desk.reopen(clerk, C, reason="复查")


def test_one_case_refusals_and_bad_requests(station: Station) -> None:
    legal = station.who("legal")
    assert [c.number for c in station.desk().run(legal, number=A).cases] == [A]
    before = len(station.events("access.refused"))
    with pytest.raises(Forbidden, match="lacks coverage.view"):
        station.desk().run(station.who("officer"), number=A)
    with pytest.raises(Forbidden, match="may not see"):
        station.desk().run(station.who("legal_west"), number=A)  # named, hidden: refused
    assert len(station.events("access.refused")) == before + 2
    with pytest.raises(NotFound):
        station.desk().run(legal, number="邵城管罚〔2019〕第999号")
    with pytest.raises(InvalidRequest):
        station.desk().run(legal, number=A, unit="城东中队")
    with pytest.raises(InvalidRequest, match="timezone-aware"):
        station.desk().run(legal, since=datetime(2019, 1, 1))


# ---------------------------------------------------------------------- the CLI


def test_cli_json_exit_codes_and_refusal(station: Station) -> None:
    # The real CLI as the users' own OS accounts, against a real service on this home.
    with serving(station.home) as svc:
        run = svc.cli("coverage", "--case", A, "--json", user="legal")
        # Wide enough that rich does not wrap a footage span inside its cell.
        ok = svc.cli("coverage", "--case", C, user="legal", env={"COLUMNS": "200"})
        refused = svc.cli("coverage", "--case", A, "--json", user="officer")
        bad = svc.cli("coverage", "--since", "last week", "--json", user="legal")
    assert run.returncode == 1, (run.stdout, run.stderr)  # 听证 is missing
    out = json.loads(run.stdout)
    assert out["complete"] is False and out["hidden"] == 0
    (case,) = out["cases"]
    assert case["number"] == A
    assert {s["stage"]: s["status"] for s in case["stages"]} == {"现场检查": "covered",
                                                                 "听证": "missing"}
    assert [x["recording_id"] for x in case["late"]] == ["rec-a2"]
    assert out["by_unit"] == [{"unit": "城东中队", "cases": 1, "required": 2, "covered": 1,
                               "missing": 1, "gaps": 0, "gap_stages": 0,
                               "not_applicable": 0, "late": 1, "unknown_time": 0}]
    assert ok.returncode == 0, (ok.stdout, ok.stderr)
    assert C in ok.stdout and ": complete" in ok.stdout and "INCOMPLETE" not in ok.stdout
    # Times are shown in the station's zone (Asia/Shanghai), not in the UTC of the JSON.
    assert "2019-03-05 09:00:00+08:00–09:06:39+08:00" in ok.stdout
    assert refused.returncode == 3
    assert json.loads(refused.stdout)["error"]["code"] == "E_FORBIDDEN"
    assert station.events("access.refused")[-1].actor == "user:officer"
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["code"] == "E_INVALID"


# ------------------------------------------------------ 记录方式 and applicability (pure)


def _decided(stage: str, applicable: bool) -> StageDecision:
    return StageDecision(stage=stage, applicable=applicable, reason="r", actor="legal", at=T0)


def test_modes_decisions_and_the_checklist() -> None:
    modes = CoverageSettings(requirements=(
        CoverageRequirement(stage="现场检查", mode="audio"),
        CoverageRequirement(stage=SEIZE, full_process=True),  # unset: video
        CoverageRequirement(stage="送达", mode="photo", case_types=("行政处罚",)),
        CoverageRequirement(stage="送达", mode="audio", case_types=("行政处罚",))))
    photo = replace(lk("p", "现场检查", 0, 0), kind="photo")
    audio = replace(lk("a", SEIZE, 0, 60), kind="audio")
    found = case_finding(facts(photo, audio, declared=WINDOW), settings=modes, now=NOW)
    assert [(s.stage, s.mode, s.status) for s in found.stages] == [
        ("现场检查", "audio", "missing"), (SEIZE, "video", "missing")]
    assert found.stages[1].gaps == () and "needs video" in found.stages[1].notes[0]
    # Two entries of one stage (photo and audio): only video meets both.
    both = case_finding(facts(case_type="行政处罚", decisions=(_decided(SEIZE, False),)),
                        settings=modes, now=NOW)
    assert {s.stage: (s.mode, s.status) for s in both.stages} == {
        "现场检查": ("audio", "missing"), SEIZE: ("video", "not_applicable"),
        "送达": ("video", "missing")}
    assert both.tally() == Tally(cases=1, required=2, missing=2, not_applicable=1)
    # Marked applicable outside the case type's list: required, as the list says of it.
    extra = case_finding(facts(decisions=(_decided("送达", True),)), settings=modes, now=NOW)
    assert [(s.stage, s.required, s.mode) for s in extra.stages][-1] == ("送达", True, "video")
    # 不适用 for a stage that is not on the list changes nothing.
    odd = case_finding(facts(lk("x", "听证", 0, 1), decisions=(_decided("听证", False),)),
                       settings=modes, now=NOW)
    assert [(s.stage, s.required, s.status) for s in odd.stages][-1] == (
        "听证", False, "covered")
    with pytest.raises(ValueError, match="cannot record a full process"):
        CoverageRequirement(stage=SEIZE, full_process=True, mode="photo")
