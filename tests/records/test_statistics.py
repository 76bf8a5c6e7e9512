"""Statistics (统计分析) counted by the database, against hand counts (tests/stats_support.py),
on SQLite and on a real PostgreSQL: every grouping, the station's months, what each user
may see (hidden, never counted), the refusal and the audit of every read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from evidock_testing import offloaded_home, open_services
from sqlalchemy import inspect, text
from sqlmodel import Session, col, select
from stats_support import (
    SUP2_BY_MONTH,
    SUP2_BY_UNIT,
    SUP2_TOTAL,
    assert_facts_kept,
    counts,
    local,
    stats_station,
)

from archive.audit.log import AuditEvent
from archive.catalog.db import writer
from archive.catalog.migrations import config as migration_config
from archive.catalog.models import Rendition, Segment
from archive.footage_model import RenditionFootage, footage_of
from config import load_settings
from config.access import CoverageRequirement, CoverageSettings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden, InvalidRequest
from records.applicability import ApplicabilityDesk
from records.statistics import (
    StatisticsReport,
    StatsQuery,
    dimensions,
    parse_bound,
    periods,
)
from records.statistics_sql import StatisticsDesk

ZONE = ZoneInfo("Asia/Shanghai")


def query(*by: str, start: str | None = None, end: str | None = None) -> StatsQuery:
    return StatsQuery(by=dimensions(list(by)), zone=ZONE, zone_name="Asia/Shanghai",
                      start=parse_bound(start, ZONE, end=False),
                      end=parse_bound(end, ZONE, end=True), offload_deadline_h=24)


# ---------------------------------------------------------------------- pure parts


def test_periods_are_the_stations_months_and_years() -> None:
    months = periods("month", datetime(2019, 12, 31, 16, 30, tzinfo=UTC),
                     datetime(2020, 2, 1, tzinfo=UTC), ZONE)
    assert [p.label for p in months] == ["2020-01", "2020-02"]  # 16:30Z is 00:30 local
    assert months[0].start.isoformat() == "2020-01-01T00:00:00+08:00"
    assert months[0].end == months[1].start
    years = periods("year", local(2019, 6, 1, 0, 0), local(2021, 1, 1, 0, 0), ZONE)
    assert [p.label for p in years] == ["2019", "2020"]
    with pytest.raises(InvalidRequest, match="narrow"):
        periods("month", local(1900, 1, 1, 0, 0), local(2100, 1, 1, 0, 0), ZONE)


@pytest.mark.parametrize(("text", "end", "expected"), [
    ("2019", False, "2019-01-01T00:00:00+08:00"),
    ("2019", True, "2020-01-01T00:00:00+08:00"),
    ("2019-12", True, "2020-01-01T00:00:00+08:00"),
    ("2019-03-05", True, "2019-03-06T00:00:00+08:00"),
    ("2019-03-05T09:00", False, "2019-03-05T09:00:00+08:00"),
    ("2019-03-05T09:00:00+00:00", True, "2019-03-05T09:00:00+00:00"),
])
def test_bounds(text: str, end: bool, expected: str) -> None:
    bound = parse_bound(text, ZONE, end=end)
    assert bound is not None and bound.isoformat() == expected


@pytest.mark.parametrize(("by", "match"), [
    (["unit", "colour"], "cannot group by 'colour'"),
    (["unit,unit"], "named twice"),
    (["month", "year"], "not both"),
])
def test_bad_dimensions(by: list[str], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        dimensions(by)


def test_bad_bounds() -> None:
    with pytest.raises(InvalidRequest, match="not a year"):
        parse_bound("last week", ZONE, end=False)
    with pytest.raises(InvalidRequest, match="after"):
        query(start="2019-04", end="2019-03")


# ---------------------------------------------------------------------- on both databases


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def station(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    yield from stats_station(request.param, tmp_path_factory, "stats")


def run(svc: Services, user: str, q: StatsQuery) -> StatisticsReport:
    desk = StatisticsDesk(catalog=svc.catalog, gate=svc.gate(), clock=svc.clock)
    return desk.run(svc.gate().by_name(user), q)


def rows(rep: StatisticsReport) -> dict[object, dict[str, object]]:
    """Each row's metrics by its key (one dimension: the bare value)."""
    out: dict[object, dict[str, object]] = {}
    for r in rep.to_json()["rows"]:  # type: ignore[attr-defined]
        key = tuple(r[d] for d in rep.query.by)
        out[key[0] if len(key) == 1 else key] = {k: r[k] for k in
                                                  counts(0, 0, 0, 0, 0)}
    return out


def test_total_and_hidden_per_user(station: Services) -> None:
    sup = run(station, "supervisor", query())  # cleared for everything
    assert sup.hidden == 0 and sup.total.to_json() == counts(8, 2400, 1, 2, 9)
    sup2 = run(station, "supervisor2", query())  # 个人隐私 only: s1, s2 hidden
    assert sup2.hidden == 2 and sup2.total.to_json() == SUP2_TOTAL
    assert sup2.rows == ()  # no dimension: the total only
    admin = run(station, "admin", query())  # no clearance: p1 too
    assert admin.hidden == 3 and admin.total.to_json() == counts(5, 1890, 1, 2, 5)
    west = run(station, "legal_west", query())  # 城西中队: r3, r4 and the unlinked r5
    assert west.hidden == 5 and west.total.to_json() == counts(3, 1230, 1, 1, 2)


def test_by_month_in_the_stations_zone(station: Services) -> None:
    rep = run(station, "supervisor2", query("month"))
    assert rows(rep) == SUP2_BY_MONTH
    first = rep.to_json()["rows"][0]  # type: ignore[index]
    assert (first["month"], first["period_start"], first["period_end"]) == (
        "2019-03", "2019-03-01T00:00:00+08:00", "2019-04-01T00:00:00+08:00")
    assert rep.total.to_json() == SUP2_TOTAL


def test_by_year_and_by_unit_and_by_officer(station: Services) -> None:
    assert rows(run(station, "supervisor2", query("year"))) == {
        "2019": counts(5, 2010, 0, 1, 5), "2020": counts(1, 0, 1, 1, 1)}
    assert rows(run(station, "supervisor2", query("unit"))) == SUP2_BY_UNIT
    assert rows(run(station, "supervisor2", query("officer"))) == {
        "100001": counts(3, 1920, 0, 0, 3), "100002": counts(2, 60, 1, 2, 3),
        None: counts(1, 30, 0, 0, 0)}


def test_by_stage_counts_a_recording_once_per_stage(station: Services) -> None:
    assert rows(run(station, "supervisor2", query("stage"))) == {
        "现场检查": counts(3, 780, 0, 1, 3), "听证": counts(1, 60, 0, 1, 1),
        "查封扣押": counts(2, 1200, 1, 1, 2), None: counts(1, 30, 0, 0, 0)}
    # Cleared for everything: s1 and s2 are in, s2 once although linked to A and S.
    sup = rows(run(station, "supervisor", query("stage")))
    assert sup["现场检查"] == counts(5, 1170, 0, 1, 6)


def test_two_dimensions(station: Services) -> None:
    got = rows(run(station, "supervisor2", query("unit", "month")))
    assert got == {("城东中队", "2019-03"): counts(3, 780, 0, 1, 4),
                   ("城西中队", "2019-04"): counts(1, 1200, 0, 0, 1),
                   ("城西中队", "2020-01"): counts(1, 0, 1, 1, 1),
                   (None, "2019-03"): counts(1, 30, 0, 0, 0)}


def test_range_is_the_stations_months(station: Services) -> None:
    # r3 was recorded at 16:30 UTC on 31 March: April at the station.
    april = run(station, "supervisor2", query("month", start="2019-04", end="2019-04"))
    assert rows(april) == {"2019-04": counts(1, 1200, 0, 0, 1)}
    march = run(station, "supervisor2", query(start="2019-03", end="2019-03"))
    assert march.total.recordings == 4 and march.hidden == 2
    to_json = march.to_json()
    assert (to_json["from"], to_json["to"]) == ("2019-03-01T00:00:00+08:00",
                                                "2019-04-01T00:00:00+08:00")
    nothing = run(station, "supervisor2", query("month", start="2030"))
    assert nothing.rows == () and nothing.total.recordings == 0 and nothing.hidden == 0


def test_refused_without_stats_view_and_every_read_audited(station: Services) -> None:
    before = _events(station, "access.refused")
    with pytest.raises(Forbidden, match="lacks stats.view"):
        run(station, "officer", query("unit"))
    refused = _events(station, "access.refused")
    assert len(refused) == len(before) + 1 and refused[-1].actor == "user:officer"
    run(station, "supervisor2", query("unit", "month", start="2019"))
    last = _events(station, "read.statistics")[-1]
    assert last.actor == "user:supervisor2"
    assert last.details["by"] == ["unit", "month"] and last.details["hidden"] == 2
    assert last.details["from"] == "2019-01-01T00:00:00+08:00"


def test_a_link_made_later_hides_the_recording_from_then_on(station: Services) -> None:
    # Hidden follows the links: r5 linked into the secret case leaves supervisor2's counts.
    desk, chief = station.cases(), station.gate().by_name("chief")
    link = desk.link(chief, "邵城管检〔2019〕第004号", "r5", stage="现场检查", reason="补充")
    try:
        rep = run(station, "supervisor2", query())
        assert rep.hidden == 3 and rep.total.recordings == 5
    finally:
        desk.unlink(chief, link.id, reason="撤回")
    assert run(station, "supervisor2", query()).total.to_json() == SUP2_TOTAL


def _events(svc: Services, action: str) -> list[AuditEvent]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(col(AuditEvent.seq))))


# ---------------------------------------------------------------- coverage stages

COVERAGE = CoverageSettings(
    requirements=(CoverageRequirement(stage="现场检查"),
                  CoverageRequirement(stage="查封扣押", case_types=("行政强制",),
                                      full_process=True),
                  CoverageRequirement(stage="听证", case_types=("行政处罚",))),
    gap_tolerance_s=5)


def test_coverage_stages_by_status_are_the_coverage_modules_findings(
        station: Services) -> None:
    """Hand count for supervisor2 (S, 国家秘密, hidden): A 现场检查 covered (2019-03-05),
    A 听证 不适用 (marked; footage 2019-03-31 22:00), C 现场检查 covered (03-08), B 查封扣押
    gaps (declared 00:30–01:00 on 2019-04-01, r3 fills 20 min), B 现场检查 missing (no
    footage: the case's creation, 2026-12)."""
    chief = station.gate().by_name("chief")
    station.cases().stage(chief, "邵城强〔2019〕第002号", stage="查封扣押",
                          start_at=local(2019, 4, 1, 0, 30), end_at=local(2019, 4, 1, 1, 0))
    ApplicabilityDesk(catalog=station.catalog, gate=station.gate(),
                      cases=station.settings.cases, clock=station.clock).decide(
        station.gate().by_name("legal"), number="邵城管罚〔2019〕第001号", stage="听证",
        applicable=False, reason="当事人未申请听证")
    desk = StatisticsDesk(catalog=station.catalog, gate=station.gate(), clock=station.clock,
                          coverage=COVERAGE)
    who = station.gate().by_name("supervisor2")

    def cov(*by: str, start: str | None = None, end: str | None = None) -> dict[str, Any]:
        found = desk.run(who, query(*by, start=start, end=end), with_coverage=True).to_json()
        return found["coverage"]  # type: ignore[no-any-return]

    def stages(n: int, covered: int = 0, missing: int = 0, gaps: int = 0,
               na: int = 0) -> dict[str, int]:
        return {"stages": n, "covered": covered, "missing": missing, "gaps": gaps,
                "not_applicable": na}

    def keyed(found: dict[str, Any]) -> dict[object, dict[str, int]]:
        return {r[found["by"][0]]: {k: r[k] for k in stages(0)} for r in found["rows"]}

    total = cov()
    assert (total["cases"], total["hidden_cases"]) == (3, 1)
    assert total["total"] == stages(5, covered=2, missing=1, gaps=1, na=1)
    assert keyed(cov("unit")) == {"城东中队": stages(3, covered=2, na=1),
                                  "城西中队": stages(2, missing=1, gaps=1)}
    assert keyed(cov("stage")) == {"现场检查": stages(3, covered=2, missing=1),
                                   "听证": stages(1, na=1), "查封扣押": stages(1, gaps=1)}
    assert keyed(cov("month")) == {"2019-03": stages(3, covered=2, na=1),
                                   "2019-04": stages(1, gaps=1),
                                   "2026-12": stages(1, missing=1)}
    assert keyed(cov("year", start="2019", end="2019")) == {
        "2019": stages(4, covered=2, gaps=1, na=1)}
    by_officer = cov("officer", "unit")  # officer is no coverage dimension: left out
    assert by_officer["by"] == ["unit"] and len(by_officer["rows"]) == 2
    last = _events(station, "read.statistics")[-1]
    assert last.details["coverage_stages"] == 5 and last.details["hidden_cases"] == 1
    plain = StatisticsDesk(catalog=station.catalog, gate=station.gate(), clock=station.clock)
    assert "coverage" not in plain.run(who, query()).to_json()
    with pytest.raises(InvalidRequest, match="coverage settings"):
        plain.run(who, query(), with_coverage=True)


# ------------------------------------------------------- footage kept with renditions


def _footage_rows(svc: Services) -> list[tuple[Any, ...]]:
    with svc.catalog.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT rendition_id, recording_id, segments_s, probed_s FROM renditionfootage "
            "ORDER BY rendition_id"))]


def test_the_migration_backfills_what_ingest_keeps(station: Services) -> None:
    """Down to 0009 (no table) and up again: the backfill from renditions and segments
    gives the very rows kept when the renditions were stored, on both dialects."""
    kept = _footage_rows(station)
    assert ("r-r1", "r1", 600.0, 699.0) in kept and ("r-r4", "r4", None, None) not in kept
    assert len(kept) == 7  # every ok rendition; r4 has none
    before = run(station, "supervisor", query("unit")).to_json()
    with writer(station.catalog.engine).begin() as conn:
        command.downgrade(migration_config(conn), "0009")
        assert not inspect(conn).has_table("renditionfootage")
        command.upgrade(migration_config(conn), "head")
    assert _footage_rows(station) == kept
    assert run(station, "supervisor", query("unit")).to_json() | {"generated_at": 0} == \
        before | {"generated_at": 0}


def test_a_second_ok_rendition_counts_its_longest_once(station: Services) -> None:
    """Runs last per database (it adds a rendition): r1 stays one recording, its hours
    those of the longer rendition."""
    before = run(station, "supervisor", query("officer")).to_json()
    digest = hashlib.sha256(b"r1").hexdigest()  # r1's blob (tests/stats_support.py)
    rendition = Rendition(id="r-r1-again", recording_id="r1", status="ok", code="OK",
                          source_blake3=digest, media={}, created_at=local(2019, 3, 6))
    segs = [Segment(rendition_id=rendition.id, index=0, name="0.mp4", start_us=0,
                    end_us=650_000_000, size=1, blake3=digest)]
    with station.catalog.transaction() as s:
        s.add(rendition)
        s.flush()
        s.add_all([*segs, footage_of(rendition, segs)])
    after = run(station, "supervisor", query("officer")).to_json()
    assert after["total"]["recordings"] == before["total"]["recordings"]  # type: ignore[index]
    assert after["total"]["hours"] == round(  # type: ignore[index]
        before["total"]["hours"] + 50 / 3600, 3)  # type: ignore[index]


def test_renditions_made_by_ingest_keep_their_footage(
        tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree) -> None:
    """Real offload, real ffmpeg: each ok rendition's row says where its last segment
    ends and what the probe said."""
    home = offloaded_home(tmp_path_factory.mktemp("footage") / "home", camera_template.root)
    svc = open_services(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        with Session(svc.catalog.engine) as s:
            renditions = s.exec(select(Rendition).where(Rendition.status == "ok")).all()
            assert renditions, "the camera fixture has video"
            for r in renditions:
                kept = s.get(RenditionFootage, r.id)
                ends = s.exec(select(Segment.end_us).where(
                    Segment.rendition_id == r.id)).all()
                assert kept is not None and kept.recording_id == r.recording_id
                assert kept.segments_s == max(ends) / 1e6
                probed = r.media.get("duration_s")
                assert kept.probed_s == (probed if isinstance(probed, float) and probed > 0
                                         else None)
        assert_facts_kept(svc)  # and the statistics facts of each recording (0015)
    finally:
        svc.close()
