"""Coverage statuses on REAL footage (ffmpeg clips, a JPEG, a WAV offloaded and rendered):
covered, missing, gaps, 不适用; 记录方式 (a photo does not cover a video stage); exit codes;
stage applicability decided through the real service as the clerk's OS account."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import StepClock, offloaded_home, ok_json
from service_support import RunningService, serving
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import Catalog
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from records.applicability import StageApplicability

SEIZE, CHECK, HEAR = "查封扣押", "现场检查", "听证"
# 行政强制: 查封扣押 the whole way (video); 行政处罚: 现场检查 by any means, 听证 on video.
EXTRA = f"""
[coverage]
gap_tolerance_s = 5
[[coverage.requirements]]
stage = "{SEIZE}"
case_types = ["行政强制"]
full_process = true
[[coverage.requirements]]
stage = "{CHECK}"
case_types = ["行政处罚"]
mode = "any"
[[coverage.requirements]]
stage = "{HEAR}"
case_types = ["行政处罚"]
mode = "video"
"""


@dataclass(frozen=True)
class Row:
    """A case: its type, links (recording key, stage), a declared window of 查封扣押
    (seconds after the first clip starts), and what `coverage --case` must find."""

    case_type: str
    links: tuple[tuple[str, str], ...]
    statuses: dict[str, str]
    exit_code: int
    window_s: tuple[float, float] | None = None


ROWS: dict[str, Row] = {
    "covered: one clip fills the window": Row(
        "行政强制", (("v1", SEIZE),), {SEIZE: "covered"}, 0, window_s=(0, 3)),
    "gaps: two clips leave 74 of 80 s unrecorded": Row(
        "行政强制", (("v1", SEIZE), ("v2", SEIZE)), {SEIZE: "gaps"}, 1, window_s=(0, 80)),
    "missing: nothing linked": Row("行政强制", (), {SEIZE: "missing"}, 1),
    "不适用: marked by the clerk": Row("行政强制", (), {SEIZE: "not_applicable"}, 0),
    "photo does not cover a video stage": Row(
        "行政处罚", (("photo", CHECK), ("photo", HEAR)), {CHECK: "covered", HEAR: "missing"}, 1),
    "audio covers any, video covers video": Row(
        "行政处罚", (("audio", CHECK), ("v1", HEAR)), {CHECK: "covered", HEAR: "covered"}, 0),
}
NUMBERS = {name: f"邵城强〔2026〕第{100 + i}号" for i, name in enumerate(ROWS)}
NOT_APPLICABLE = "不适用: marked by the clerk"


@dataclass
class Station:
    svc: RunningService
    home: Path
    recordings: dict[str, tuple[str, str, datetime]]  # key → id, kind, camera start
    marked: dict[str, object]  # the clerk's 不适用 decision, as `coverage stage` printed it


def _recordings(home: Path) -> dict[str, tuple[str, str, datetime]]:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        recs = sorted(catalog.recordings(), key=lambda r: r.original_display)
    finally:
        catalog.close()
    videos = [r for r in recs if r.kind == "video" and r.camera_start is not None]
    out = {f"v{i + 1}": (r.id, r.kind, r.camera_start) for i, r in enumerate(videos[:2])}
    for kind in ("photo", "audio"):
        r = next(x for x in recs if x.kind == kind)
        assert r.camera_start is not None
        out[kind] = (r.id, r.kind, r.camera_start)
    return out


def _populate(home: Path, recs: dict[str, tuple[str, str, datetime]]) -> None:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    try:
        desk, clerk = svc.cases(), svc.gate().by_name("clerk")
        t0 = recs["v1"][2]
        for name, row in ROWS.items():
            number = NUMBERS[name]
            desk.create(clerk, number=number, case_type=row.case_type, unit="城东中队")
            for key, stage in row.links:
                desk.link(clerk, number, recs[key][0], stage=stage, reason="现场")
            if row.window_s is not None:
                a, b = row.window_s
                desk.stage(clerk, number, stage=SEIZE, start_at=t0 + timedelta(seconds=a),
                           end_at=t0 + timedelta(seconds=b))
    finally:
        svc.close()


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory,
            camera_template: CameraTree) -> Iterator[Station]:
    home = offloaded_home(tmp_path_factory.mktemp("coverage-real") / "home",
                          camera_template.root, extra_toml=EXTRA)
    recs = _recordings(home)
    # The clips follow each other 45 s apart: the second starts 48 s after the first.
    assert recs["v2"][2] - recs["v1"][2] == timedelta(seconds=48)
    _populate(home, recs)
    with serving(home) as svc:
        marked = ok_json(svc.cli("coverage", "stage", NUMBERS[NOT_APPLICABLE], SEIZE,
                                 "--not-applicable", "--reason", "本案未实施查封扣押", "--json",
                                 user="clerk"))
        yield Station(svc, home, recs, marked)


def _events(home: Path, action: str) -> list[AuditEvent]:
    catalog = Catalog.open(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))
    finally:
        catalog.close()


def test_the_clerk_marks_a_stage_not_applicable_through_the_service(station: Station) -> None:
    made = station.marked
    assert (made["stage"], made["applicable"], made["actor"]) == (SEIZE, False, "clerk")
    event = _events(station.home, "case.stage_applicability")[0]
    assert event.actor == "user:clerk" and event.details["applicable"] is False
    assert event.details["reason"] == "本案未实施查封扣押"


@pytest.mark.parametrize("name", list(ROWS))
def test_status_and_exit_code_on_real_footage(station: Station, name: str) -> None:
    row = ROWS[name]
    run = station.svc.cli("coverage", "--case", NUMBERS[name], "--json", user="clerk")
    assert run.returncode == row.exit_code, (run.stdout, run.stderr)
    (case,) = json.loads(run.stdout)["cases"]
    assert {s["stage"]: s["status"] for s in case["stages"]} == row.statuses
    for s in case["stages"]:
        if s["status"] == "gaps":
            assert sum(g["seconds"] for g in s["gaps"]) == pytest.approx(74, abs=0.2)
        if s["stage"] == HEAR and name.startswith("photo"):
            assert [(f["kind"], f["counts"]) for f in s["footage"]] == [("photo", False)]
            assert any("needs video" in n for n in s["notes"])
        if s["status"] == "not_applicable":
            assert s["decision"]["reason"] == "本案未实施查封扣押"


def test_human_output_says_gaps_and_not_applicable(station: Station) -> None:
    gaps = station.svc.cli("coverage", "--case", NUMBERS["gaps: two clips leave 74 of 80 s "
                                                          "unrecorded"], user="clerk")
    assert gaps.returncode == 1 and "GAPS" in gaps.stdout and "1 with gaps" in gaps.stdout
    na = station.svc.cli("coverage", "--case", NUMBERS[NOT_APPLICABLE], user="clerk")
    assert na.returncode == 0 and "不适用" in na.stdout and "complete" in na.stdout


def test_who_may_decide_and_the_newest_decision_wins(station: Station) -> None:
    number = NUMBERS["missing: nothing linked"]
    refused = {user: station.svc.cli("coverage", "stage", number, SEIZE, "--not-applicable",
                                     "--reason", "x", "--json", user=user)
               for user in ("officer", "clerk2", "inspector")}  # clerk2: 城西中队 only
    for user, run in refused.items():
        assert run.returncode == 3, (user, run.stdout)
        assert json.loads(run.stdout)["error"]["code"] == "E_FORBIDDEN"
    unknown = station.svc.cli("coverage", "stage", number, "不存在的环节", "--not-applicable",
                              "--reason", "x", user="legal")
    no_reason = station.svc.cli("coverage", "stage", number, SEIZE, "--not-applicable",
                                "--reason", " ", user="legal")
    undecided = station.svc.cli("coverage", "stage", number, SEIZE, "--reason", "x",
                                user="legal")
    assert (unknown.returncode, no_reason.returncode, undecided.returncode) == (1, 1, 1)
    for flag, code in (("--not-applicable", 0), ("--applicable", 1)):
        ok_json(station.svc.cli("coverage", "stage", number, SEIZE, flag, "--reason",
                                f"法制审核 {flag}", "--json", user="legal"))
        run = station.svc.cli("coverage", "--case", number, "--json", user="legal")
        assert run.returncode == code, run.stdout
    history = ok_json(station.svc.cli("coverage", "history", number, "--json", user="clerk"))
    assert [(d["applicable"], d["actor"]) for d in history["decisions"]] == [
        (False, "legal"), (True, "legal")]
    clerk2 = station.svc.cli("coverage", "--case", number, "--json", user="clerk2")
    assert clerk2.returncode == 3  # coverage.view, but not of 城东中队


def test_decisions_are_append_only(station: Station) -> None:
    catalog = Catalog.open(f"sqlite:///{station.home / 'catalog.sqlite3'}")
    try:
        with Session(catalog.engine) as s:
            row = s.exec(select(StageApplicability)).first()
            assert row is not None
            row.reason = "rewritten"
            s.add(row)
            with pytest.raises(Exception, match="append-only|refuse|not allowed"):
                s.commit()
    finally:
        catalog.close()


def test_stats_coverage_counts_the_same_statuses(station: Station) -> None:
    # The decisions test leaves its case as it found it (missing), so in any order:
    found = ok_json(station.svc.cli("stats", "--coverage", "--by", "stage", "--json",
                                    user="legal"))["coverage"]
    rows = {r["stage"]: {k: r[k] for k in ("stages", "covered", "missing", "gaps",
                                           "not_applicable")} for r in found["rows"]}
    assert rows == {SEIZE: {"stages": 4, "covered": 1, "missing": 1, "gaps": 1,
                            "not_applicable": 1},
                    CHECK: {"stages": 2, "covered": 2, "missing": 0, "gaps": 0,
                            "not_applicable": 0},
                    HEAR: {"stages": 2, "covered": 1, "missing": 1, "gaps": 0,
                           "not_applicable": 0}}  # the photo-only 听证 is missing
    csv = station.svc.cli("stats", "--coverage", "--by", "stage", "--csv", user="legal")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines()[0] == "stage,stages,covered,missing,gaps,not_applicable"
    assert station.svc.cli("stats", "--coverage", "--json", user="clerk").returncode == 3
