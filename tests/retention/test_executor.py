"""The retention executor on a real catalog and store: schedule, grace, two-person approval,
re-planning at run time, tombstones before unlinks, shared and damaged blobs, fixity;
and the `evidock retention` commands as real users through a real station service.

One camera is offloaded and rendered (1 s segments) once per module at T0; each test
works on its own copy of that station with a clock it moves ~200 days ahead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import (
    StepClock,
    offloaded_home,
    ok_json,
    tree_snapshot,
)
from service_support import serving
from sqlalchemy import func, inspect
from sqlmodel import Session, SQLModel, col, select
from station_homes import aged_home

from archive.audit.log import AuditEvent
from archive.catalog import Blob, Recording
from archive.catalog.models import Rendition, Segment, Tombstone
from archive.fixity import (
    E_FIXITY_MISSING,
    E_FIXITY_TOMBSTONED_PRESENT,
    I_FIXITY_TOMBSTONED,
    Fixity,
    FixityCheck,
    FixityPlan,
)
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from ingest.outcome import OffloadRequest
from integrity.errors import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Refused,
    SelfApproval,
)
from records.permissions import Actor
from retention.actions import (
    E_RETENTION_UNVERIFIED,
    I_RETENTION_AWAITING_APPROVAL,
    I_RETENTION_CANCELLED,
    I_RETENTION_DELETED,
    I_RETENTION_NOT_DUE,
    RunReport,
)
from retention.executor import RetentionExecutor
from retention.models import RetentionAction

T0 = StepClock().now  # when the template station ingested (2026-11-23 08:00 UTC)
EXTRA = """
[rendition]
segment_seconds = 1
"""


class Clock:
    """The station's clock, moved by the test; each reading is a second after the last."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def to_day(self, days: float) -> datetime:
        """Move to T0 + ``days`` and return that moment."""
        self.now = T0 + timedelta(days=days)
        return self.now


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Path:
    """A station home that has offloaded and rendered the template camera."""
    home = tmp_path_factory.mktemp("retention") / "home"
    return offloaded_home(home, camera_template.root, extra_toml=EXTRA)


@dataclass
class Station:
    svc: Services
    clock: Clock
    ex: RetentionExecutor
    video: Recording  # the first video: rendered into several segments

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))

    def content(self, recording_id: str) -> dict[str, str]:
        """blake3 → role of everything stored for a recording."""
        with Session(self.svc.catalog.engine) as s:
            rec = s.get(Recording, recording_id)
            assert rec is not None
            out = {rec.blake3: "original"}
            for ren in s.exec(select(Rendition).where(Rendition.recording_id == rec.id)):
                if ren.manifest_blake3:
                    out[ren.manifest_blake3] = "manifest"
                for seg in s.exec(select(Segment).where(Segment.rendition_id == ren.id)):
                    out[seg.blake3] = "segment"
        return out

    def tombstones(self) -> list[Tombstone]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(Tombstone).order_by(col(Tombstone.id))))

    def steps(self, recording_id: str) -> list[str]:
        with Session(self.svc.catalog.engine) as s:
            return [a.step for a in s.exec(select(RetentionAction)
                                           .where(RetentionAction.recording_id == recording_id)
                                           .order_by(col(RetentionAction.id)))]

    def counts(self) -> dict[str, int]:
        """Rows per table."""
        engine = self.svc.catalog.engine
        with Session(engine) as s:
            return {t.name: s.exec(select(func.count()).select_from(t)).one()
                    for t in SQLModel.metadata.sorted_tables
                    if inspect(engine).has_table(t.name)}

    def scheduled_and_approved(self, day: float = 200) -> None:
        """Every recording due at T0+day: scheduled by supervisor, approved by supervisor2."""
        report = self.ex.schedule(self.who("supervisor"), self.clock.to_day(day))
        assert {c.step for c in report.changes} == {"scheduled"}
        for change in report.changes:
            self.ex.approve(self.who("supervisor2"), change.recording_id)

    def run(self, day: float, *, dry_run: bool = False) -> RunReport:
        return self.ex.run(self.who("admin"), self.clock.to_day(day), dry_run=dry_run)


@pytest.fixture
def st(template: Path, tmp_path: Path) -> Iterator[Station]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    clock = Clock(T0 + timedelta(days=1))
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}), clock=clock)
    videos = sorted((r for r in svc.catalog.recordings() if r.kind == "video"),
                    key=lambda r: r.camera_start or r.ingested_at)
    yield Station(svc, clock, svc.retention(), videos[0])
    svc.close()


def _outcome(report: RunReport, recording_id: str) -> tuple[str, str]:
    [o] = [o for o in report.outcomes if o.recording_id == recording_id]
    return o.status, o.code


# ---------------------------------------------------------------------- planning


def test_plan_and_dry_run_change_nothing_but_read_events(st: Station) -> None:
    st.scheduled_and_approved()
    st.clock.to_day(210)
    store_before, rows_before = tree_snapshot(st.svc.store.root), st.counts()
    seq_before = st.svc.audit().size()

    plan = st.ex.plan(st.who("admin"), st.clock.now)
    dry = st.run(210, dry_run=True)

    assert plan.summary["delete"] == len(plan.decisions) == 6
    assert {d.rule for d in plan.decisions} == {"base"}
    assert {o.status for o in dry.outcomes} == {"would_delete"}
    video = [o for o in dry.outcomes if o.recording_id == st.video.id][0]
    assert set(video.removed) == set(st.content(st.video.id)) and len(video.removed) > 3
    assert tree_snapshot(st.svc.store.root) == store_before
    after = st.counts()
    assert {k: v for k, v in after.items() if k != "auditevent"} == \
        {k: v for k, v in rows_before.items() if k != "auditevent"}
    with Session(st.svc.catalog.engine) as s:
        new = s.exec(select(AuditEvent).where(AuditEvent.seq >= seq_before)).all()
    assert [e.action for e in new] == ["read.retention.plan", "read.retention.run"]
    assert all(st.svc.store.has(b) for b in st.content(st.video.id))


def test_nothing_is_scheduled_before_the_period_ends(st: Station) -> None:
    report = st.ex.schedule(st.who("supervisor"), st.clock.to_day(100))
    assert report.changes == () and report.open == 0
    assert st.ex.pending(st.clock.now) == []
    assert st.events("retention.schedule") == []


def test_schedule_is_idempotent_and_needs_the_permission(st: Station) -> None:
    supervisor = st.who("supervisor")
    first = st.ex.schedule(supervisor, st.clock.to_day(200))
    again = st.ex.schedule(supervisor, st.clock.to_day(201))
    assert len(first.changes) == 6 and again.changes == () and again.open == 6
    assert {v.due_at for v in st.ex.pending(st.clock.now)} == {T0 + timedelta(days=207)}
    assert len(st.events("retention.schedule")) == 6
    with pytest.raises(Forbidden):
        st.ex.schedule(st.who("clerk"), st.clock.now)


# ---------------------------------------------------------------------- grace, approval


def test_grace_period_deletes_nothing_before_due_at_and_everything_after(st: Station) -> None:
    st.scheduled_and_approved(200)  # due at day 207
    early = st.run(206)
    assert {o.code for o in early.outcomes} == {I_RETENTION_NOT_DUE}
    assert st.tombstones() == []
    assert all(st.svc.store.has(b) for b in st.content(st.video.id))

    late = st.run(208)

    assert {o.status for o in late.outcomes} == {"deleted"}
    assert len(st.tombstones()) == 6
    assert not any(st.svc.store.has(b) for b in st.content(st.video.id))
    assert st.steps(st.video.id) == ["scheduled", "approved", "executed"]
    assert st.ex.pending(st.clock.now) == []
    assert st.ex.plan(st.who("admin"), st.clock.now).decisions == ()  # gone from planning


def test_two_person_approval(st: Station) -> None:
    st.ex.schedule(st.who("supervisor"), st.clock.to_day(200))
    unapproved = st.run(210)
    assert _outcome(unapproved, st.video.id) == ("waiting", I_RETENTION_AWAITING_APPROVAL)
    assert st.tombstones() == []

    with pytest.raises(SelfApproval):
        st.ex.approve(st.who("supervisor"), st.video.id)
    [refused] = st.events("access.refused")
    assert refused.actor == "user:supervisor"
    assert refused.details["code"] == "E_SELF_APPROVAL"
    assert refused.subjects == [f"recording:{st.video.id}"]
    with pytest.raises(Forbidden):
        st.ex.approve(st.who("admin"), st.video.id)  # admin lacks retention.approve
    assert {o.code for o in st.run(211).outcomes} == {I_RETENTION_AWAITING_APPROVAL}

    view = st.ex.approve(st.who("supervisor2"), st.video.id)
    assert view.approvals == ("supervisor2",)
    with pytest.raises(Conflict):
        st.ex.approve(st.who("supervisor2"), st.video.id)
    report = st.run(212)

    assert _outcome(report, st.video.id) == ("deleted", "I_RETENTION_DELETED")
    assert [t.recording_id for t in st.tombstones()] == [st.video.id]
    assert [e.subjects for e in st.events("retention.approve")] == [
        [f"recording:{st.video.id}"]]
    with pytest.raises(NotFound):
        st.ex.approve(st.who("supervisor2"), st.video.id)  # nothing scheduled any more


def test_a_future_now_is_refused_for_a_real_run(st: Station) -> None:
    st.scheduled_and_approved(200)
    ahead = st.clock.now + timedelta(days=30)
    with pytest.raises(InvalidRequest):
        st.ex.run(st.who("admin"), ahead)
    assert st.tombstones() == []
    assert {o.status for o in st.ex.run(st.who("admin"), ahead, dry_run=True).outcomes} \
        == {"would_delete"}


# ---------------------------------------------------------------------- re-planning


def test_a_hold_placed_after_scheduling_cancels_at_run_time(st: Station) -> None:
    st.scheduled_and_approved(200)
    hold = st.svc.holds().add(st.who("legal"), scope="recording", target=st.video.id,
                              reason="复议申请")

    report = st.run(210)

    status, _ = _outcome(report, st.video.id)
    assert status == "cancelled"
    assert st.steps(st.video.id) == ["scheduled", "approved", "cancelled"]
    with Session(st.svc.catalog.engine) as s:
        cancel = s.exec(select(RetentionAction).where(
            RetentionAction.recording_id == st.video.id,
            RetentionAction.step == "cancelled")).one()
    assert cancel.rule == "hold" and hold.id in cancel.reason and cancel.actor == "admin"
    assert [e.subjects for e in st.events("retention.cancel")] == [
        [f"recording:{st.video.id}"]]
    assert all(st.svc.store.has(b) for b in st.content(st.video.id))
    assert st.video.id not in {t.recording_id for t in st.tombstones()}
    assert len(st.tombstones()) == 5  # the others went


def test_a_case_link_made_after_scheduling_cancels_at_run_time(st: Station) -> None:
    st.scheduled_and_approved(200)
    clerk = st.who("clerk")
    desk = st.svc.cases()
    desk.create(clerk, number="邵城管罚〔2027〕第001号", case_type="行政处罚", unit="城东中队")
    desk.link(clerk, "邵城管罚〔2027〕第001号", st.video.id, stage="立案", reason="复查")

    report = st.run(210)

    assert _outcome(report, st.video.id)[0] == "cancelled"
    assert st.steps(st.video.id)[-1] == "cancelled"
    assert all(st.svc.store.has(b) for b in st.content(st.video.id))
    again = st.ex.schedule(st.who("supervisor"), st.clock.now)
    assert st.video.id not in {c.recording_id for c in again.changes}


def test_schedule_cancels_a_deletion_the_plan_now_keeps(st: Station) -> None:
    st.ex.schedule(st.who("supervisor"), st.clock.to_day(200))
    st.svc.holds().add(st.who("legal"), scope="officer", target="123456", reason="投诉调查")
    report = st.ex.schedule(st.who("supervisor"), st.clock.to_day(201))
    assert {c.step for c in report.changes} == {"cancelled"} and len(report.changes) == 6
    assert {c.rule for c in report.changes} == {"hold"} and report.open == 0
    assert st.ex.pending(st.clock.now) == []


# ---------------------------------------------------------------------- tombstones


def test_tombstone_records_digests_rule_approvers_and_is_audited(st: Station) -> None:
    content = st.content(st.video.id)
    with Session(st.svc.catalog.engine) as s:
        blobs = {b: s.get(Blob, b) for b in content}
    st.scheduled_and_approved(200)

    st.run(210)

    [tomb] = [t for t in st.tombstones() if t.recording_id == st.video.id]
    assert set(tomb.blobs) == set(content) and tomb.blobs[0] == st.video.blake3
    assert tomb.rule == "base" and "184 days" in tomb.reason
    assert tomb.approvers == ["supervisor2"] and tomb.actor == "admin"
    assert tomb.at == T0 + timedelta(days=210) and tomb.remote == []
    for b3, role in content.items():
        row = blobs[b3]
        assert row is not None
        assert tomb.digests[b3] == {"role": role, "sha256": row.sha256, "size": row.size,
                                    "removed": True}
    [execute] = [e for e in st.events("retention.execute")
                 if e.subjects == [f"recording:{st.video.id}"]]
    assert execute.actor == "user:admin" and execute.details["tombstone"] == tomb.id
    assert set(execute.details["blobs"]) == set(content)
    assert len(st.events("retention.schedule")) == 6
    assert len(st.events("retention.approve")) == 6
    assert len(st.events("retention.execute")) == 6
    [run] = st.events("retention.run")
    assert run.details["deleted"] == 6


def test_deleted_blobs_are_gone_and_fixity_expects_them_absent(st: Station) -> None:
    content = st.content(st.video.id)
    st.scheduled_and_approved(200)
    st.run(210)
    assert not any(st.svc.store.path_for(b).exists() for b in content)
    fixity = Fixity(catalog=st.svc.catalog, store=st.svc.store, audit=st.svc.audit(),
                    clock=st.clock)

    report = fixity.run(FixityPlan("all"), actor="user:auditor")

    assert report.findings == ()
    assert not any(f.code == E_FIXITY_MISSING for f in report.findings)
    with Session(st.svc.catalog.engine) as s:
        codes = {c.blake3: c.code for c in s.exec(
            select(FixityCheck).where(FixityCheck.run_id == report.run_id))}
    assert {codes[b] for b in content} == {I_FIXITY_TOMBSTONED}


def test_a_tombstoned_blob_still_present_is_reported_and_swept_by_the_next_run(
        st: Station) -> None:
    st.scheduled_and_approved(200)
    original = st.svc.store.path_for(st.video.blake3)
    data = original.read_bytes()
    st.run(210)
    original.write_bytes(data)  # as if the run died after its commit, before the unlink
    fixity = Fixity(catalog=st.svc.catalog, store=st.svc.store, audit=st.svc.audit(),
                    clock=st.clock)

    found = fixity.run(FixityPlan("all"), actor="user:auditor").findings

    assert [(f.code, f.subject) for f in found] == [
        (E_FIXITY_TOMBSTONED_PRESENT, st.video.blake3)]
    report = st.run(211)
    assert report.swept == (st.video.blake3,) and not original.exists()
    assert [e.subjects for e in st.events("retention.sweep")] == [
        [f"blob:{st.video.blake3}"]]
    assert fixity.run(FixityPlan("all"), actor="user:auditor").findings == ()


def test_a_blob_another_live_recording_shares_is_kept(st: Station, camera: Path) -> None:
    # The same files offloaded from a second camera (another officer): same blobs.
    second = st.svc.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0002",
                                                   officer_id="654321"))
    assert second.outcome in ("completed", "findings")
    st.svc.holds().add(st.who("legal"), scope="officer", target="654321", reason="信访")
    segments = {b for b, role in st.content(st.video.id).items() if role != "original"}
    st.scheduled_and_approved(200)

    report = st.run(210)

    [video] = [o for o in report.outcomes if o.recording_id == st.video.id]
    assert video.status == "deleted" and video.kept == (st.video.blake3,)
    assert set(video.removed) == segments
    [tomb] = [t for t in st.tombstones() if t.recording_id == st.video.id]
    assert st.video.blake3 not in tomb.blobs
    assert tomb.digests[st.video.blake3]["removed"] is False
    assert st.svc.store.has(st.video.blake3)
    assert not any(st.svc.store.has(b) for b in segments)
    fixity = Fixity(catalog=st.svc.catalog, store=st.svc.store, audit=st.svc.audit(),
                    clock=st.clock)
    assert fixity.run(FixityPlan("all"), actor="user:auditor").findings == ()


def test_a_flipped_byte_stops_that_deletion_and_is_reported(st: Station) -> None:
    st.scheduled_and_approved(200)
    path = st.svc.store.path_for(st.video.blake3)
    os.chmod(path, 0o644)
    with open(path, "r+b") as fh:
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.chmod(path, 0o444)

    report = st.run(210)

    [video] = [o for o in report.outcomes if o.recording_id == st.video.id]
    assert (video.status, video.code) == ("blocked", E_RETENTION_UNVERIFIED)
    assert video.details["problems"][0]["blake3"] == st.video.blake3
    assert video.details["problems"][0]["problem"] == "altered"
    assert report.exit_code == 1
    assert path.exists() and all(st.svc.store.has(b) for b in st.content(st.video.id))
    assert st.video.id not in {t.recording_id for t in st.tombstones()}
    assert st.steps(st.video.id) == ["scheduled", "approved"]  # still pending
    [blocked] = st.events("retention.blocked")
    assert blocked.subjects == [f"recording:{st.video.id}"]
    assert blocked.details["code"] == E_RETENTION_UNVERIFIED
    assert len(st.tombstones()) == 5  # the undamaged recordings went


def test_a_hold_on_deleted_footage_is_refused(st: Station) -> None:
    st.scheduled_and_approved(200)
    assert _outcome(st.run(210), st.video.id) == ("deleted", "I_RETENTION_DELETED")
    with pytest.raises(Conflict, match="already deleted by retention"):
        st.svc.holds().add(st.who("legal"), scope="recording", target=st.video.id,
                           reason="诉讼")
    assert st.events("hold.add") == []


def test_remove_refuses_a_blob_still_in_use(st: Station) -> None:
    with pytest.raises(Refused):
        st.svc.store.remove(st.video.blake3, in_use=lambda _b3: True)
    assert st.svc.store.has(st.video.blake3)


# ---------------------------------------------------------------------- CLI


def test_cli_plan_pending_and_dry_run(st: Station) -> None:
    with serving(st.svc.settings.home) as svc:
        out = ok_json(svc.cli("retention", "plan", "--json", user="admin"))
        # The service runs on the real clock: only the shape is certain here.
        assert len(out["decisions"]) == 6
        assert out["summary"]["keep"] + out["summary"]["delete"] == 6
        assert {d["rule"] for d in out["decisions"]} == {"base"}
        assert ok_json(svc.cli("retention", "pending", "--json", user="admin"))["pending"] == []
        dry = ok_json(svc.cli("retention", "run", "--dry-run", "--json", user="admin"))
        assert dry["dry_run"] is True
        refused = svc.cli("retention", "run", "--json", user="clerk")
        assert ok_json(refused, 3)["error"]["code"] == "E_FORBIDDEN"
    [denied] = st.events("access.refused")
    assert denied.actor == "user:clerk" and denied.details["permission"] == "retention.run"


@pytest.fixture
def aged(tmp_path: Path) -> Path:
    return aged_home(tmp_path)


def _recordings(home: Path) -> list[Recording]:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        return sorted(svc.catalog.recordings(), key=lambda r: r.id)
    finally:
        svc.close()


def _flip_a_byte(home: Path, b3: str) -> None:
    path = home / "store" / b3[:2] / b3[2:4] / b3
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    path.chmod(0o444)


def test_cli_schedule_approve_and_run_through_the_service(aged: Path) -> None:
    held, altered, doomed = _recordings(aged)
    with serving(aged) as svc:
        planned = svc.cli("retention", "plan", user="admin")
        assert planned.returncode == 0, planned.stderr
        assert f"delete {'base':22} {held.id}  " in planned.stdout
        assert planned.stdout.endswith("delete 3, delete:base 3, keep 0\n")
        scheduled = svc.cli("retention", "schedule", user="supervisor")
        assert scheduled.returncode == 0, scheduled.stderr
        assert scheduled.stdout.endswith("3 scheduled, 0 cancelled, 3 pending\n")
        assert f"scheduled {held.id}  due " in scheduled.stdout
        own = svc.cli("retention", "approve", held.id, "--json", user="supervisor")
        assert ok_json(own, 3)["error"]["code"] == "E_SELF_APPROVAL"
        for rec in (held, altered, doomed):
            approved = ok_json(svc.cli("retention", "approve", rec.id, "--json",
                                       user="supervisor2"))
            assert approved["approvals"] == ["supervisor2"]
        pending = svc.cli("retention", "pending", user="supervisor")
        assert pending.returncode == 0, pending.stderr
        assert f"{doomed.id}  scheduled by supervisor; approved by supervisor2; " \
            in pending.stdout and pending.stdout.endswith("3 pending\n")
        ok_json(svc.cli("hold", "add", "--recording", held.id, "--reason", "诉讼", "--json",
                        user="legal"))
        _flip_a_byte(aged, altered.blake3)
        dry = svc.cli("retention", "run", "--dry-run", user="admin")
        assert dry.returncode == 1, dry.stderr  # the altered one would be blocked
        assert "dry run: 1 would_delete, 1 cancelled, 1 blocked" in dry.stdout

        ran = svc.cli("retention", "run", "--json", user="admin")

        report = ok_json(ran, 1)
        assert report["counts"] == {"deleted": 1, "would_delete": 0, "cancelled": 1,
                                    "blocked": 1, "waiting": 0, "raced": 0}
        status = {o["recording_id"]: (o["status"], o["code"]) for o in report["outcomes"]}
        assert status == {held.id: ("cancelled", I_RETENTION_CANCELLED),
                          altered.id: ("blocked", E_RETENTION_UNVERIFIED),
                          doomed.id: ("deleted", I_RETENTION_DELETED)}
    assert not (aged / "store" / doomed.blake3[:2] / doomed.blake3[2:4] / doomed.blake3).exists()
    svc_after = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(aged)}))
    try:
        with Session(svc_after.catalog.engine) as s:
            [tomb] = s.exec(select(Tombstone)).all()
    finally:
        svc_after.close()
    assert (tomb.recording_id, tomb.actor, tomb.approvers) == (doomed.id, "admin",
                                                               ["supervisor2"])
