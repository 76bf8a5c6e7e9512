"""Exports need approval (未经批准不得擅自对外提供): request → another person approves →
run once. Real SQLite, real ffmpeg renditions, real packages verified offline."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from evidock_testing import StepClock, without_pending, write_agency_config
from service_support import RunningService, serving
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import Recording
from archive.catalog.models import Rendition, Segment
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import media_relpath
from fixtures.media import ClipSpec, encode_clip, write_photo
from ingest.outcome import OffloadRequest
from integrity.errors import (
    Conflict,
    DiskFull,
    EvidockError,
    Forbidden,
    InvalidRequest,
    NotApproved,
    NotFound,
    SelfApproval,
)
from integrity.package import verify_package
from records.exportarea import ExportArea, Removed
from records.exportrun import finish, staging_of
from records.exports import ExportDesk
from records.models import Export, ExportRequest
from records.package import Exporter, StagedPackage
from records.permissions import Actor

SERIAL, OFFICER = "ZFY0001", "123456"
START = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
CASE = "邵城管罚〔2019〕第002号"
SECRET_CASE = "邵城管罚〔2019〕第003号"
# One person holding both sides of the two-person rule, to show the rule is enforced, and
# a clerk who may file a 国家秘密 case.
EXTRA_USERS = """
[[access.users]]
name = "chief"
os_users = ["evt-chief"]
roles = ["inspector", "supervisor"]
[[access.users]]
name = "secretary"
roles = ["clerk"]
clearances = ["国家秘密"]
"""


@dataclass
class World:
    svc: Services
    clock: StepClock
    desk: ExportDesk
    long: Recording  # 12 s: two segments
    short: Recording  # 3 s: one segment
    photo: Recording
    links: dict[str, int]

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def request(self, by: str = "inspector", **kw: Any) -> str:
        kw.setdefault("purpose", "行政复议")
        kw.setdefault("recipient", "邵阳市人民政府行政复议办公室")
        if "recording" not in kw:
            kw.setdefault("case", CASE)
        return self.desk.request(self.who(by), **kw).id

    def approved(self, **kw: Any) -> str:
        rid = self.request(**kw)
        self.desk.approve(self.who("legal"), rid, reason="依法提供")
        return rid

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))

    def exports_of(self, request_id: str) -> list[Export]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(Export).where(Export.request_id == request_id)))

    def segments(self, rec: Recording) -> list[Segment]:
        with Session(self.svc.catalog.engine) as s:
            rend = s.exec(select(Rendition).where(Rendition.recording_id == rec.id,
                                                  Rendition.status == "ok")).one()
            return list(s.exec(select(Segment).where(Segment.rendition_id == rend.id)
                               .order_by(col(Segment.index))))

    def verify(self, path: Path) -> list[Any]:
        return without_pending(verify_package(path, trusted=self.svc.keys.keyring().by_id()))


def _rel(seq: int, kind: str = "video") -> str:
    return media_relpath("A", serial=SERIAL, officer=OFFICER,
                         start=START + timedelta(minutes=seq), seq=seq, kind=kind)


def _ingest(root: Path, svc: Services) -> dict[str, Recording]:
    camera = root / "camera"
    rels = {"long": _rel(1), "short": _rel(2), "photo": _rel(3, "photo")}
    for rel in rels.values():
        (camera / rel).parent.mkdir(parents=True, exist_ok=True)
    encode_clip(camera / rels["long"], ClipSpec(duration_s=12.0, height=120),
                creation_time=START + timedelta(minutes=1))
    encode_clip(camera / rels["short"], ClipSpec(duration_s=3.0, height=120),
                creation_time=START + timedelta(minutes=2))
    write_photo(camera / rels["photo"], taken=START, height=120)
    report = svc.offloader().run(OffloadRequest(source=camera, device_serial=SERIAL,
                                                officer_id=OFFICER))
    assert report.outcome == "completed"
    ids = {os.fsdecode(f.relpath): f.recording_id for f in report.files}
    with Session(svc.catalog.engine) as s:
        recs = {what: s.get(Recording, ids[rel]) for what, rel in rels.items()}
    renderer = svc.renderer()
    for rec in recs.values():
        assert rec is not None
        renderer.render(rec)
    return recs  # type: ignore[return-value]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("approvals")
    write_agency_config(root / "home", EXTRA_USERS)
    clock = StepClock()
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(root / "home")}),
                               clock=clock)
    recs = _ingest(root, svc)
    cases, clerk = svc.cases(), svc.gate().by_name("clerk")
    secretary = svc.gate().by_name("secretary")
    cases.create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
    cases.create(secretary, number=SECRET_CASE, case_type="行政处罚", unit="城东中队",
                 sensitivity="国家秘密")

    def link(rec: str, start: int | None = None, end: int | None = None) -> int:
        return cases.link(clerk, CASE, recs[rec].id, stage="调查取证", reason="现场取证",
                          start_us=start, end_us=end).id

    links = {"long-a": link("long", 0, 4_000_000), "long-b": link("long", 10_500_000),
             "short": link("short"), "gone": link("short", 0, 1_000_000),
             "photo": link("photo")}
    cases.unlink(clerk, links["gone"], reason="误关联")
    desk = svc.exports()
    yield World(svc, clock, desk, recs["long"], recs["short"], recs["photo"], links)
    svc.close()


# --------------------------------------------------------------------------- the happy path


def test_a_case_request_exports_every_active_link_once(world: World, tmp_path: Path) -> None:
    made = world.desk.request(world.who("inspector"), case=CASE, purpose="行政复议",
                              recipient="邵阳市人民政府行政复议办公室", reason="申请人申请行政复议")
    assert (made.status, made.case_number, made.requested_by) == ("pending", CASE, "inspector")
    assert world.events("export.request")[-1].details["case_number"] == CASE
    rid = made.id
    pending = world.desk.show(world.who("legal"), rid)
    assert pending.status == "pending" and pending.case_number == CASE
    long_end = world.segments(world.long)[-1].end_us
    short_end = world.segments(world.short)[-1].end_us
    expected = [(world.long.id, 0, 4_000_000, world.links["long-a"]),
                (world.long.id, 10_500_000, long_end, world.links["long-b"]),
                (world.short.id, 0, short_end, world.links["short"]),
                (world.photo.id, 0, 0, world.links["photo"])]  # issue 15: a photo, whole
    assert [(i.recording_id, i.start_us, i.end_us, i.link_id)
            for i in pending.items] == expected  # the unlinked range is not there
    assert pending.skipped == ()

    approved = world.desk.approve(world.who("legal"), rid, reason="依法提供")
    assert approved.status == "approved" and approved.approval is not None
    assert approved.approval.valid_until == approved.approval.at + timedelta(hours=72)
    out = tmp_path / "out"
    packages = world.desk.run(world.who("inspector"), rid, out=out)

    names = [f"01-{world.long.id}", f"02-{world.long.id}", f"03-{world.short.id}",
             f"04-{world.photo.id}"]  # issue 15: the photo leaves as its original
    assert sorted(p.name for p in out.iterdir()) == [*names, "case", "request.json"]
    assert [p.path for p in packages] == [out / n for n in names]
    for p in packages:
        assert world.verify(p.path) == [], p.path
    assert [p.segments for p in packages] == [("seg00000.mp4",), ("seg00001.mp4",),
                                              ("seg00000.mp4",), ()]
    doc = json.loads((out / "request.json").read_text(encoding="utf-8"))
    assert (doc["request_id"], doc["case_number"], doc["purpose"], doc["recipient"]) == (
        rid, CASE, "行政复议", "邵阳市人民政府行政复议办公室")
    assert (doc["requested_by"], doc["approved_by"], doc["exported_by"]) == (
        "inspector", "legal", "inspector")
    assert doc["approved_at"] == approved.approval.at.isoformat()
    assert [(d["dir"], d["export_id"]) for d in doc["packages"]] == [
        (n, p.export_id) for n, p in zip(names, packages, strict=True)]

    rows = world.exports_of(rid)
    assert {r.id for r in rows} == {p.export_id for p in packages}
    assert {(r.actor, r.purpose) for r in rows} == {("user:inspector", "行政复议")}
    used = world.desk.show(world.who("legal"), rid)
    assert used.status == "used" and set(used.exports) == {p.export_id for p in packages}
    run_event = world.events("export.run")[-1]
    assert f"export-request:{rid}" in run_event.subjects
    assert run_event.details["exports"] == [p.export_id for p in packages]
    assert {e.action for e in world.events("export.request")
            if f"export-request:{rid}" in e.subjects} == {"export.request"}

    with pytest.raises(NotApproved) as again:  # used once: never twice
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "again")
    assert again.value.code == "E_NOT_APPROVED" and not (tmp_path / "again").exists()
    assert len(world.exports_of(rid)) == 4  # with the photo's


def test_a_whole_recording_request_is_one_package(world: World, tmp_path: Path) -> None:
    rid = world.approved(recording=world.short.id)
    out = tmp_path / "clip"
    [package] = world.desk.run(world.who("inspector"), rid, out=out)
    assert package.path == out and world.verify(out) == []
    clip = json.loads((out / "data" / "clip.json").read_text())
    assert clip["range_us"] == [0, world.segments(world.short)[-1].end_us]
    assert not (out / "request.json").exists()  # a bag holds nothing extra
    # ...but the package itself records the approved request, under its digests.
    request = clip["request"]
    assert request["request_id"] == rid and request["exported_by"] == "inspector"
    assert request["approved_by"] != request["requested_by"]
    assert {"purpose", "recipient", "approved_at", "valid_until"} <= request.keys()


def test_a_link_made_after_the_request_is_not_covered(world: World) -> None:
    rid = world.request()
    clerk = world.who("clerk")
    link = world.svc.cases().link(clerk, CASE, world.short.id, stage="送达", reason="补充",
                                  start_us=1_000_000, end_us=2_000_000)
    try:
        items = world.desk.show(world.who("legal"), rid).items
        assert link.id not in {i.link_id for i in items} and len(items) == 4
        later = world.desk.show(world.who("legal"), world.request()).items
        assert link.id in {i.link_id for i in later}
    finally:
        world.svc.cases().unlink(clerk, link.id, reason="测试结束")


class _FailsSecond(Exporter):
    """Stages the first package, then fails like a full disk."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.calls = 0

    def stage(self, *args: Any, **kw: Any) -> StagedPackage:
        self.calls += 1
        if self.calls > 1:
            raise DiskFull("no space left on the export disk")
        return super().stage(*args, **kw)


def _desk(world: World, exporter: Exporter | None = None,
          reached: Callable[[str], None] = lambda _p: None) -> ExportDesk:
    svc = world.svc
    return ExportDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                      exporter=exporter or svc.exports().exporter,
                      settings=svc.settings.exports, clock=svc.clock, reached=reached)


def test_a_run_that_fails_part_way_leaves_nothing_and_can_be_retried(
        world: World, tmp_path: Path) -> None:
    svc = world.svc
    broken = _FailsSecond(store=svc.store, catalog=svc.catalog, keys=svc.keys, clock=svc.clock,
                          station_id=svc.settings.station.id)
    rid = world.approved()
    out = tmp_path / "out"
    with pytest.raises(DiskFull):
        _desk(world, broken).run(world.who("inspector"), rid, out=out)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # staging removed too
    assert world.exports_of(rid) == []  # nothing was recorded: nothing left staging
    released = world.events("export.released")[-1]
    assert released.details.pop("row")["table"] == "exportdecision"  # archive/bindings.py
    assert released.details == {"error": "E_DISK_FULL"}
    assert f"export-request:{rid}" in released.subjects
    assert world.desk.show(world.who("legal"), rid).status == "approved"  # given back
    assert len(world.desk.run(world.who("inspector"), rid, out=out)) == 4


# --------------------------------------------------------------------------- issue 19, item 2


def test_the_approval_is_spent_before_any_byte_is_written(world: World,
                                                          tmp_path: Path) -> None:
    """At the first point of the run the request is already `running`, committed and
    audited, and nothing exists at or beside --out; a second run is refused there."""
    rid = world.approved(recording=world.short.id)
    out = tmp_path / "out"
    seen: dict[str, Any] = {}

    def at(point: str) -> None:
        if point != "export_started":
            return
        seen["status"] = world.desk.show(world.who("legal"), rid).status
        seen["files"] = sorted(p.name for p in tmp_path.iterdir())
        seen["event"] = world.events("export.start")[-1].subjects
        with pytest.raises(NotApproved):  # the approval is spent: a second run is refused
            world.desk.run(world.who("inspector"), rid, out=tmp_path / "second")

    [package] = _desk(world, reached=at).run(world.who("inspector"), rid, out=out)
    assert seen == {"status": "running", "files": [],
                    "event": [f"export-request:{rid}", f"recording:{world.short.id}"]}
    assert not (tmp_path / "second").exists()
    assert [e.id for e in world.exports_of(rid)] == [package.export_id]


class _BusyAt:
    """The catalog as it is when another writer holds it past the busy timeout: every
    write transaction from the hook point on fails with SQLite's 'database is locked'."""

    def __init__(self, world: World, point: str) -> None:
        self.world, self.point, self.busy = world, point, False

    def __getattr__(self, name: str) -> Any:  # reads go to the real catalog
        return getattr(self.world.svc.catalog, name)

    def reached(self, point: str) -> None:
        self.busy = self.busy or point == self.point

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        if self.busy:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        with self.world.svc.catalog.transaction() as s:
            yield s


def test_a_busy_catalog_at_the_commit_leaves_nothing_and_one_package_later(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rid = world.approved(recording=world.short.id)
    out = tmp_path / "out"
    busy = _BusyAt(world, "export_staged")
    desk = _desk(world, reached=busy.reached)
    monkeypatch.setattr(desk, "catalog", busy)  # ExportRun writes through desk.catalog
    with pytest.raises(OperationalError):
        desk.run(world.who("inspector"), rid, out=out)
    assert list(tmp_path.iterdir()) == [] and world.exports_of(rid) == []
    # The catalog could not take the release either: the request stays `running`, spent.
    assert world.desk.show(world.who("legal"), rid).status == "running"
    with pytest.raises(NotApproved) as refused:
        world.desk.run(world.who("inspector"), rid, out=out)
    assert refused.value.details["status"] == "running" and not out.exists()
    # The station service, holding the request's run lock, resumes it: one package.
    [package] = world.desk.run(world.who("inspector"), rid, out=out, exclusive=True)
    assert world.verify(out) == []
    assert [e.id for e in world.exports_of(rid)] == [package.export_id]
    assert f"export-request:{rid}" in world.events("export.resume")[-1].subjects
    with pytest.raises(NotApproved):
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "again", exclusive=True)
    assert [e.id for e in world.exports_of(rid)] == [package.export_id]


def test_a_run_recorded_but_not_renamed_is_finished_not_run_again(
        world: World, tmp_path: Path) -> None:
    """Killed between the commit and the rename (simulated: the rename fails): the
    export is recorded, its package whole in staging; finish() puts it in place."""
    rid = world.approved(recording=world.short.id)
    out = tmp_path / "out"

    def at(point: str) -> None:
        if point == "export_recorded":
            raise KeyboardInterrupt  # stands for the SIGKILL (tests/service: the real one)

    with pytest.raises(KeyboardInterrupt):
        _desk(world, reached=at).run(world.who("inspector"), rid, out=out)
    assert not out.exists() and staging_of(out).is_dir()
    [row] = world.exports_of(rid)
    assert world.desk.show(world.who("legal"), rid).status == "used"
    with pytest.raises(NotApproved):
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "again", exclusive=True)
    assert finish(out) and world.verify(out) == []
    clip = json.loads((out / "data" / "clip.json").read_bytes())
    assert clip["export_id"] == row.id and not staging_of(out).exists()
    assert world.exports_of(rid) == [row]


def test_discarding_ends_a_request_and_needs_the_run_lock_for_a_running_one(
        world: World, tmp_path: Path) -> None:
    rid = world.approved(recording=world.short.id)
    with pytest.raises(InvalidRequest):
        world.desk.discard(world.who("inspector"), rid, reason=" ")
    with pytest.raises(Forbidden):  # clerk2: another unit, no part in this request
        world.desk.discard(world.who("clerk2"), rid, reason="不需要了")
    done = world.desk.discard(world.who("inspector"), rid, reason="不需要了")
    assert done.status == "discarded"
    event = world.events("export.discard")[-1]
    assert event.details.pop("row")["table"] == "exportdecision"  # archive/bindings.py
    assert event.details == {"reason": "不需要了", "was": "approved"}
    with pytest.raises(NotApproved):
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "out", exclusive=True)
    with pytest.raises(Conflict):
        world.desk.discard(world.who("legal"), rid, reason="again")
    assert not (tmp_path / "out").exists()

    running = world.approved(recording=world.short.id)
    busy = _BusyAt(world, "export_staged")
    desk = _desk(world, reached=busy.reached)
    desk.catalog = busy  # type: ignore[assignment]
    with pytest.raises(OperationalError):
        desk.run(world.who("inspector"), running, out=tmp_path / "r")
    with pytest.raises(Conflict):  # maybe under way: only the lock holder may end it
        world.desk.discard(world.who("legal"), running, reason="中断")
    ended = world.desk.discard(world.who("legal"), running, reason="中断", exclusive=True)
    assert ended.status == "discarded" and world.exports_of(running) == []
    assert world.events("export.discard")[-1].details["was"] == "running"


def test_the_export_area_keeps_a_package_until_its_approval_ends(world: World,
                                                                  tmp_path: Path) -> None:
    area = ExportArea(root=tmp_path / "exports")
    used = world.approved(recording=world.short.id)
    with area.running(used) as top:
        world.desk.run(world.who("inspector"), used, out=top, exclusive=True)
    released = world.approved(recording=world.short.id)  # a run that wrote nothing
    (area.root / f".{released}.staging" / "data").mkdir(parents=True)
    stranger = area.root / "no-such-request"
    stranger.mkdir()
    assert world.desk.tidy(area) == [
        Removed(released, f".{released}.staging", "left by a run that did not finish "
                                                  "(request approved)"),
        Removed("no-such-request", "no-such-request", "no such export request")]
    assert world.verify(area.path(used)) == []  # kept: its approval still runs
    with area.running(used):  # a run or download under way: left alone
        world.clock.now += timedelta(hours=73)
        assert world.desk.tidy(area) == []
    [removed] = world.desk.tidy(area)
    assert (removed.request_id, removed.name) == (used, used)
    assert removed.why.startswith("kept until its approval ended")
    assert not area.path(used).exists()
    event = world.events("export.area.removed")[-1]
    assert (event.actor, event.subjects) == ("system:service", [f"export-request:{used}"])
    with pytest.raises(NotFound):
        area.files(used)


# --------------------------------------------------------------------------- refusals


def test_run_before_approval_is_refused_audited_and_writes_nothing(world: World,
                                                                   tmp_path: Path) -> None:
    rid = world.request()
    out = tmp_path / "out"
    with pytest.raises(NotApproved) as err:
        world.desk.run(world.who("inspector"), rid, out=out)
    assert err.value.code == "E_NOT_APPROVED" and err.value.exit_code == 3
    assert not out.exists() and world.exports_of(rid) == []
    event = world.events("access.refused")[-1]
    assert event.seq == err.value.details["audit_seq"]
    assert (event.actor, event.details["code"], event.details["status"]) == (
        "user:inspector", "E_NOT_APPROVED", "pending")


def test_self_approval_is_refused_and_audited(world: World) -> None:
    rid = world.request(by="chief")
    with pytest.raises(SelfApproval) as err:
        world.desk.approve(world.who("chief"), rid)
    assert err.value.code == "E_SELF_APPROVAL" and err.value.exit_code == 3
    event = world.events("access.refused")[-1]
    assert event.seq == err.value.details["audit_seq"]
    assert event.details["code"] == "E_SELF_APPROVAL"
    assert f"export-request:{rid}" in event.subjects
    assert world.desk.show(world.who("legal"), rid).status == "pending"
    assert world.desk.approve(world.who("supervisor"), rid).status == "approved"


def test_a_rejected_request_cannot_run_or_be_decided_again(world: World,
                                                           tmp_path: Path) -> None:
    rid = world.request()
    with pytest.raises(InvalidRequest):
        world.desk.reject(world.who("legal"), rid, reason=" ")
    assert world.desk.reject(world.who("legal"), rid, reason="用途不符").status == "rejected"
    with pytest.raises(Conflict):
        world.desk.approve(world.who("supervisor"), rid)
    with pytest.raises(NotApproved):
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert world.events("export.reject")[-1].details["reason"] == "用途不符"


def test_an_expired_approval_is_refused(world: World, tmp_path: Path) -> None:
    rid = world.approved(recording=world.short.id, start="0", end="1")
    world.clock.now += timedelta(hours=72)
    view = world.desk.show(world.who("legal"), rid)
    assert view.status == "expired"
    with pytest.raises(NotApproved) as err:
        world.desk.run(world.who("inspector"), rid, out=tmp_path / "out")
    assert err.value.details["status"] == "expired" and not (tmp_path / "out").exists()
    with pytest.raises(Conflict):  # a fresh request is needed, not a second approval
        world.desk.approve(world.who("supervisor"), rid)


def test_approval_still_valid_just_before_it_expires(world: World, tmp_path: Path) -> None:
    rid = world.approved(recording=world.short.id, start="0", end="1")
    world.clock.now += timedelta(hours=71, minutes=59)
    [package] = world.desk.run(world.who("inspector"), rid, out=tmp_path / "out")
    assert world.verify(package.path) == []


@pytest.mark.parametrize("kw", [
    {"purpose": "好奇"},
    {"case": CASE, "start": "0"},
    {"case": None},
    {"recording": "x", "case": CASE},
    {"recipient": "  "},
])
def test_bad_requests_are_refused_and_leave_no_row(world: World, kw: dict[str, Any]) -> None:
    with Session(world.svc.catalog.engine) as s:
        before = len(s.exec(select(ExportRequest)).all())
    args: dict[str, Any] = {"case": CASE, "purpose": "行政复议", "recipient": "复议机关", **kw}
    with pytest.raises(InvalidRequest):
        world.desk.request(world.who("inspector"), **args)
    with Session(world.svc.catalog.engine) as s:
        assert len(s.exec(select(ExportRequest)).all()) == before


def test_a_range_outside_the_recording_is_refused(world: World) -> None:
    with pytest.raises(InvalidRequest):
        world.request(recording=world.short.id, start="5", end="9")
    with pytest.raises(EvidockError):  # a photo leaves whole: it has no time range
        world.request(recording=world.photo.id, start="0", end="1")


def test_an_officer_may_request_but_not_approve_or_run(world: World, tmp_path: Path) -> None:
    mine = world.request(by="officer")
    other = world.request()
    with pytest.raises(Forbidden) as err:
        world.desk.approve(world.who("officer"), other)
    assert err.value.code == "E_FORBIDDEN"
    world.desk.approve(world.who("legal"), mine)
    with pytest.raises(Forbidden):
        world.desk.run(world.who("officer"), mine, out=tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert world.desk.show(world.who("officer"), mine).status == "approved"


def test_unit_and_clearance_limit_who_may_request_and_see(world: World) -> None:
    with pytest.raises(Forbidden):  # clerk2 works for 城西中队 only
        world.request(by="clerk2")
    with pytest.raises(Forbidden):  # linked to a 城东中队 case
        world.request(by="clerk2", recording=world.long.id)
    with pytest.raises(Forbidden):  # 国家秘密 needs a clearance the inspector lacks
        world.request(case=SECRET_CASE)
    rid = world.request()
    seen = {r.id for r in world.desk.list(world.who("clerk2"))}
    assert rid not in seen
    listed = world.desk.list(world.who("legal"), status="pending", case=CASE)
    assert rid in {r.id for r in listed} and {r.status for r in listed} == {"pending"}
    assert world.events("read.export.list")[-1].actor == "user:legal"
    with pytest.raises(InvalidRequest):
        world.desk.list(world.who("legal"), status="lost")


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def station(world: World) -> Iterator[RunningService]:
    """The station service over the world's home; the CLI runs as real OS accounts."""
    with serving(world.svc.settings.home) as svc:
        yield svc


def test_cli_self_approval_exits_3_and_there_is_no_direct_export(
        world: World, station: RunningService) -> None:
    rid = world.request(by="chief", recording=world.short.id)
    run = station.cli("export", "approve", rid, "--json", user="chief")
    assert run.returncode == 3, (run.stdout, run.stderr)
    assert json.loads(run.stdout)["error"]["code"] == "E_SELF_APPROVAL"
    refused = world.events("access.refused")[-1]
    assert (refused.actor, refused.details["code"]) == ("user:chief", "E_SELF_APPROVAL")
    assert f"export-request:{rid}" in refused.subjects
    run = station.cli("export", "list", "--status", "pending", "--json", user="legal")
    assert run.returncode == 0, run.stderr
    listed = {r["id"]: r for r in json.loads(run.stdout)["requests"]}
    assert listed[rid]["requested_by"] == "chief" and listed[rid]["status"] == "pending"
    assert world.events("read.export.list")[-1].actor == "user:legal"
    # The old unapproved `evidock export REC --start --end --out` is gone.
    direct = world.svc.settings.home / "direct"
    run = station.cli("export", world.short.id, "--start", "0", "--end", "1", "--out",
                      str(direct), user="inspector")
    assert run.returncode == 2 and not direct.exists()
