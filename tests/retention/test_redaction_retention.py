"""Issue 17c: redacted derivatives leave with their recording.

A station offloaded 400 days ago with no grace period: every recording is due. V1 has an
approved redaction (approved for publication: it must not keep V1), V2 is under a legal
hold and has an approved redaction of its own. Retention runs with the real desks (the
scheduler schedules, a supervisor approves, an admin runs): V1's footage and every blob
of its redaction (plans, rendered file, statement, signature) are removed and listed in
the tombstone; V2 and its redaction keep every byte; the deleted redaction is reported
as deleted and refuses to be watched, rendered, decided or exported; fixity, the audit
log and the catalog records verify clean afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evidock_testing import ok_json
from service_support import open_dir, serving
from sqlmodel import Session, select
from station_homes import aged_home, rendered_videos

from archive.audit.log import AuditEvent
from archive.bindings import check_all
from archive.catalog.models import Tombstone
from archive.fixity import I_FIXITY_TOMBSTONED, FixityCheck
from config import load_settings
from evidock.jobs import SYSTEM_ACTOR
from evidock.wiring import Services
from fixtures.camera import ClipSpec
from integrity.errors import Conflict
from integrity.redaction import Box
from records.auditdesk import AuditDesk
from records.footage_thumbs import Thumbnails
from records.redaction_model import RedactionStep
from records.redactionbook import ROLES, redaction_content
from retention.actions import I_RETENTION_DELETED, RunReport


def _services(home: Path) -> Services:
    return Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))


def _aged_two_clips(root: Path) -> Path:
    """Two video clips with sound (the renders carry an audio track), rendered."""
    return aged_home(root, clips=(ClipSpec(duration_s=2.0, height=240),
                                  ClipSpec(duration_s=2.0, height=240)),
                     audio=True, render=True)


def _approved_redaction(svc: Services, recording: str, box: Box) -> str:
    """Requested and rendered by clerk, watched and approved by legal (real ffmpeg)."""
    who, desk = svc.gate().by_name, svc.redactions()
    made = desk.request(who("clerk"), recording, start_us=0, end_us=1_000_000,
                        reason="信息公开前技术处理", faces=False, boxes=[(box, 0, 500_000)])
    desk.render(who("clerk"), made.id)
    desk.view(who("legal"), made.id)
    assert desk.approve(who("legal"), made.id, reason="已审看").status == "approved"
    return made.id


@dataclass(frozen=True)
class Prepared:
    home: Path
    v1: str  # due: deleted with its approved redaction
    v2: str  # held: kept with its redaction
    r1: str
    r2: str
    content1: dict[str, str]  # V1's redaction blobs → role, before the run
    content2: dict[str, str]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    home = _aged_two_clips(tmp_path_factory.mktemp("redaction-retention"))
    svc = _services(home)
    try:
        v1, v2 = rendered_videos(svc)[:2]
        # Different boxes: the fixture's clips show the same picture, and the same box
        # over it renders the very same file (kept while the other redaction lives).
        r1 = _approved_redaction(svc, v1, Box(0, 0, 64, 64))
        r2 = _approved_redaction(svc, v2, Box(96, 64, 48, 48))
        svc.holds().add(svc.gate().by_name("legal"), scope="recording", target=v2,
                        reason="行政诉讼")
        with Session(svc.catalog.engine) as s:
            content1, content2 = (dict(redaction_content(s, v)) for v in (v1, v2))
    finally:
        svc.close()
    return Prepared(home, v1, v2, r1, r2, content1, content2)


def _copy(prepared: Prepared, to: Path) -> Path:
    shutil.copytree(prepared.home, to / "home")
    return to / "home"


def _retention(svc: Services) -> RunReport:
    """Scheduled by the scheduler, approved by a supervisor, run by an admin."""
    ex, who = svc.retention(), svc.gate().by_name
    ex.schedule(SYSTEM_ACTOR, svc.clock())
    for pending in ex.pending(svc.clock()):
        ex.approve(who("supervisor"), pending.recording_id)
    return ex.run(who("admin"), svc.clock())


@dataclass(frozen=True)
class Ran:
    home: Path
    report: RunReport


@pytest.fixture(scope="module")
def ran(prepared: Prepared, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    home = _copy(prepared, tmp_path_factory.mktemp("ran"))
    svc = _services(home)
    try:
        return Ran(home, _retention(svc))
    finally:
        svc.close()


@pytest.fixture
def svc(ran: Ran) -> Iterator[Services]:
    services = _services(ran.home)
    yield services
    services.close()


def _tombstone(svc: Services, recording: str) -> Tombstone | None:
    with Session(svc.catalog.engine) as s:
        return s.exec(select(Tombstone).where(Tombstone.recording_id == recording)).first()


def test_every_redaction_blob_goes_with_its_recording_into_the_tombstone(
        prepared: Prepared, ran: Ran, svc: Services) -> None:
    # plan + rendered file + statement + signature, each recorded once
    assert sorted(set(prepared.content1.values())) == sorted(ROLES.values())
    [v1] = [o for o in ran.report.outcomes if o.recording_id == prepared.v1]
    assert (v1.status, v1.code) == ("deleted", I_RETENTION_DELETED)
    assert set(prepared.content1) <= set(v1.removed) and v1.kept == ()
    tomb = _tombstone(svc, prepared.v1)
    assert tomb is not None
    assert set(prepared.content1) <= set(tomb.blobs)
    for b3, role in prepared.content1.items():
        assert tomb.digests[b3]["role"] == role and tomb.digests[b3]["removed"] is True
        assert tomb.digests[b3]["sha256"] is not None
        assert not svc.store.path_for(b3).exists(), (b3, role)
    assert not svc.store.has(svc.catalog.recording(prepared.v1).blake3)


def test_an_approved_redaction_does_not_keep_its_recording(
        prepared: Prepared, ran: Ran) -> None:
    """Approved for publication, V1 was still deleted on the day it was due: a
    redaction is a derivative, not evidence, and never extends retention."""
    deleted = {o.recording_id for o in ran.report.outcomes if o.status == "deleted"}
    assert prepared.v1 in deleted and prepared.v2 not in deleted


def test_a_held_recordings_redaction_keeps_every_blob(
        prepared: Prepared, ran: Ran, svc: Services) -> None:
    assert _tombstone(svc, prepared.v2) is None
    assert len(prepared.content2) == 4
    assert all(svc.store.has(b) for b in prepared.content2)
    desk, legal = svc.redactions(), svc.gate().by_name("legal")
    view, plan = desk.show(legal, prepared.r2)
    assert (view.status, view.tombstone, plan is not None) == ("approved", None, True)
    assert desk.approved_output(prepared.r2)[0] in prepared.content2


def test_show_and_list_report_the_deletion(prepared: Prepared, svc: Services) -> None:
    desk, legal = svc.redactions(), svc.gate().by_name("legal")
    tomb = _tombstone(svc, prepared.v1)
    assert tomb is not None
    view, plan = desk.show(legal, prepared.r1)
    assert (view.status, view.tombstone, plan) == ("deleted", tomb.id, None)
    shown = view.to_json(plan)
    assert shown["deleted"]["tombstone"] == tomb.id and "retention" in shown["deleted"]["note"]
    assert [s["kind"] for s in shown["steps"]] == ["plan", "render", "view", "approve"]
    assert [v.id for v in desk.list(legal, status="deleted")] == [prepared.r1]
    assert {v.id: v.status for v in desk.list(legal)} == {prepared.r1: "deleted",
                                                          prepared.r2: "approved"}


@pytest.mark.parametrize("attempt", ["view", "render", "approve", "reject", "edit"])
def test_a_deleted_redaction_refuses_every_use_and_audits_it(
        prepared: Prepared, svc: Services, attempt: str) -> None:
    desk, who = svc.redactions(), svc.gate().by_name
    calls = {"view": lambda: desk.view(who("supervisor"), prepared.r1),
             "render": lambda: desk.render(who("clerk"), prepared.r1),
             "approve": lambda: desk.approve(who("supervisor"), prepared.r1, reason="好"),
             "reject": lambda: desk.reject(who("supervisor"), prepared.r1, reason="不好"),
             "edit": lambda: desk.edit(who("clerk"), prepared.r1,
                                       add_boxes=[(Box(0, 0, 8, 8), 0, 100_000)])}
    with Session(svc.catalog.engine) as s:
        steps_before = len(s.exec(select(RedactionStep)).all())
    with pytest.raises(Conflict, match="deleted by retention") as raised:
        calls[attempt]()
    with Session(svc.catalog.engine) as s:
        event = s.exec(select(AuditEvent).where(
            AuditEvent.seq == raised.value.details["audit_seq"])).one()
    assert event.action == "access.refused" and event.details["code"] == "E_CONFLICT"
    assert "deleted by retention" in event.details["why"]
    assert f"redaction:{prepared.r1}" in event.subjects
    with Session(svc.catalog.engine) as s:
        assert len(s.exec(select(RedactionStep)).all()) == steps_before


def test_a_deleted_redaction_cannot_be_published_or_requested_again(
        prepared: Prepared, svc: Services) -> None:
    with pytest.raises(Conflict, match="deleted by retention"):
        svc.redactions().approved_output(prepared.r1)
    with pytest.raises(Conflict, match="deleted by retention"):
        svc.exports().request(svc.gate().by_name("inspector"), purpose="信息公开",
                              recipient="政府信息公开平台", redaction=prepared.r1)
    with pytest.raises(Conflict, match="deleted by retention"):
        svc.redactions().request(svc.gate().by_name("clerk"), prepared.v1, start_us=0,
                                 end_us=500_000, reason="再次公开", faces=False)


def test_fixity_audit_and_records_verify_clean_after_the_deletion(
        prepared: Prepared, svc: Services) -> None:
    desk = AuditDesk(gate=svc.gate(), audit=svc.audit(), store=svc.store, keys=svc.keys,
                     clock=svc.clock)
    admin = svc.gate().by_name("admin")
    fixity = desk.fixity(admin)
    assert fixity.findings == ()
    with Session(svc.catalog.engine) as s:
        codes = {c.blake3: c.code for c in s.exec(
            select(FixityCheck).where(FixityCheck.run_id == fixity.run_id))}
        findings, _count = check_all(s)
    assert {codes[b] for b in prepared.content1} == {I_FIXITY_TOMBSTONED}
    assert findings == []
    verified = desk.verify(admin)
    assert verified["ok"] is True and verified["findings"] == []


def test_redaction_show_through_the_service_says_deleted(
        prepared: Prepared, ran: Ran) -> None:
    """As the real reviewer account, over the real service."""
    outbox = open_dir("evidock-redaction-retention-")
    outbox.chmod(0o1777)
    with serving(ran.home) as station:
        shown = ok_json(station.cli("redaction", "show", prepared.r1, "--json",
                                    user="legal"))["redaction"]
        human = station.cli("redaction", "show", prepared.r1, user="legal")
        refused = station.cli("redaction", "view", prepared.r1, "--out",
                              str(outbox / "x.mp4"), "--json", user="legal")
    assert shown["status"] == "deleted" and shown["deleted"]["tombstone"] >= 1
    assert human.returncode == 0 and "DELETED (tombstone" in human.stdout
    assert refused.returncode != 0
    assert json.loads(refused.stdout)["error"]["code"] == "E_CONFLICT", (
        refused.stdout, refused.stderr)
    assert not (outbox / "x.mp4").exists()


def test_a_blob_another_live_recordings_redaction_names_is_kept(
        prepared: Prepared, tmp_path: Path) -> None:
    """The shared-blob rule covers redactions: a (forged, unvouched) step of V2's
    redaction naming V1's rendered file keeps it — a row can keep a blob longer, never
    make it go — and the tombstone says it was kept."""
    home = _copy(prepared, tmp_path)
    svc = _services(home)
    try:
        out1 = svc.redactions().approved_output(prepared.r1)[0]
        with svc.catalog.transaction() as s:
            s.add(RedactionStep(redaction_id=prepared.r2, kind="view", actor="legal",
                                at=svc.clock(), output_blake3=out1))
        report = _retention(svc)
        [v1] = [o for o in report.outcomes if o.recording_id == prepared.v1]
        tomb = _tombstone(svc, prepared.v1)
        assert tomb is not None
        assert v1.status == "deleted" and out1 in v1.kept and out1 not in tomb.blobs
        assert tomb.digests[out1]["removed"] is False and svc.store.has(out1)
        assert not any(svc.store.has(b) for b in prepared.content1 if b != out1)
    finally:
        svc.close()


def _stills(prepared: Prepared, to: Path, recordings: tuple[str, ...]) -> tuple[Path, list[str]]:
    """A copy of the station where the desk has shown ``recordings``' stills."""
    home = _copy(prepared, to)
    svc = _services(home)
    try:
        thumbs = Thumbnails(catalog=svc.catalog, store=svc.store, gate=svc.gate())
        return home, [thumbs.still(svc.gate().by_name("legal"), r).blake3 for r in recordings]
    finally:
        svc.close()


def test_a_recordings_still_goes_with_it_unless_a_live_recording_shows_the_same(
        prepared: Prepared, tmp_path: Path) -> None:
    """The desk's still shows the footage: retention removes it with its recording and
    lists it in the tombstone. The fixture's two clips show the same picture, so their
    stills are one JPEG: while V2 lives, that blob stays."""
    home, [alone] = _stills(prepared, tmp_path / "alone", (prepared.v1,))
    svc = _services(home)
    try:
        [v1] = [o for o in _retention(svc).outcomes if o.recording_id == prepared.v1]
        tomb = _tombstone(svc, prepared.v1)
        assert tomb is not None and v1.status == "deleted"
        assert alone in v1.removed and tomb.digests[alone]["role"] == "thumbnail"
        assert not svc.store.has(alone)
    finally:
        svc.close()
    home, [s1, s2] = _stills(prepared, tmp_path / "shared", (prepared.v1, prepared.v2))
    assert s1 == s2 == alone
    svc = _services(home)
    try:
        [v1] = [o for o in _retention(svc).outcomes if o.recording_id == prepared.v1]
        assert v1.status == "deleted" and s1 in v1.kept and svc.store.has(s1)
    finally:
        svc.close()
