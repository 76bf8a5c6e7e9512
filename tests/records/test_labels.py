"""A recording's labels wherever it is reached from, at the desks (issue 19, items 1, 4).

The footage rows are made directly (a recording with an ok rendition of two segments;
no bytes are read by anything here); every desk, gate and audit event is real. The
same attacks run through the real service as real OS accounts in
tests/service/test_labels_everywhere.py.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import StepClock, write_agency_config
from sqlmodel import Session, col, select
from station_homes import SECRETARY

from archive.audit.log import AuditEvent
from archive.bindings import bind
from archive.catalog import Blob, Device, DockSession, Recording
from archive.catalog.models import Rendition, Segment
from config import load_settings
from evidock.wiring import Services
from integrity.errors import Forbidden, HiddenItem, NotFound
from records.auditdesk import AuditDesk
from records.casebook import Casebook
from records.coverage_load import CoverageDesk
from records.models import CaseLink
from records.permissions import Actor
from records.viewing import Viewer

SECRET = "邵城管罚〔2019〕第900号"
LEAKY = "邵城管罚〔2019〕第902号"
EXTRA = SECRETARY
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _footage(svc: Services, rid: str) -> None:
    """A video row with an ok rendition of two 1 s segments."""
    digest = hashlib.sha256(rid.encode()).hexdigest()
    with svc.catalog.transaction() as s:
        if s.get(Device, "ZFY0001") is None:
            s.add(Device(serial="ZFY0001", camera_model="test", first_seen=T0))
        s.add(DockSession(id=f"s-{rid}", station_id="station-01", device_serial="ZFY0001",
                          officer_id="123456", camera_model="test", source="/cam",
                          started_at=T0))
        s.add(Blob(blake3=digest, sha256=digest, size=1, stored_at=T0))
        s.add(Recording(id=rid, session_id=f"s-{rid}", device_serial="ZFY0001",
                        officer_id="123456", original_path=rid.encode(),
                        original_display=rid, kind="video", size=1, blake3=digest,
                        sha256=digest, camera_start=T0, source_mtime_ns=0,
                        ingested_at=T0 + timedelta(minutes=5), status="ingested"))
        s.add(Rendition(id=f"r-{rid}", recording_id=rid, status="ok", code="OK",
                        source_blake3=digest, media={"duration_s": 2.0}, created_at=T0))
        for i in range(2):
            s.add(Segment(rendition_id=f"r-{rid}", index=i, name=f"{i}.mp4",
                          start_us=i * 1_000_000, end_us=(i + 1) * 1_000_000, size=1,
                          blake3=digest))


@dataclass
class Station:
    svc: Services

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))

    def audit_desk(self) -> AuditDesk:
        return AuditDesk(gate=self.svc.gate(), audit=self.svc.audit(), store=self.svc.store,
                         keys=self.svc.keys, clock=self.svc.clock)


@pytest.fixture
def st(tmp_path: Path) -> Iterator[Station]:
    """SECRET (国家秘密, 城东中队) holds v1; LEAKY (public, 城西中队) holds v2 and, by a
    raw row no desk would make any more, v1."""
    home = tmp_path / "home"
    write_agency_config(home, EXTRA)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    st = Station(svc)
    for rid in ("v1", "v2", "v3"):
        _footage(svc, rid)
    cases = svc.cases()
    cases.create(st.who("secretary"), number=SECRET, case_type="行政处罚", unit="城东中队",
                 sensitivity="国家秘密")
    cases.link(st.who("secretary"), SECRET, "v1", stage="调查取证", reason="涉密")
    cases.create(st.who("clerk2"), number=LEAKY, case_type="行政处罚", unit="城西中队")
    cases.link(st.who("clerk2"), LEAKY, "v2", stage="调查取证", reason="现场检查")
    with svc.catalog.transaction() as s:
        s.add(CaseLink(case_id=Casebook(catalog=svc.catalog).case(LEAKY).id,
                       recording_id="v1", action="link", stage="调查取证", actor="clerk2",
                       reason="旧数据", at=T0))
    yield st
    svc.close()


# ---------------------------------------------------------------------- links


@pytest.mark.parametrize("user", ["clerk2", "clerk"])
def test_a_link_needs_the_right_to_see_the_recording_as_its_links_label_it(
        st: Station, user: str) -> None:
    with pytest.raises(Forbidden) as caught:
        st.svc.cases().link(st.who(user), LEAKY, "v1", stage="现场检查", reason="借道")
    assert SECRET not in caught.value.message
    refused = st.events("access.refused")[-1]
    assert (refused.actor, refused.subjects[-1]) == (f"user:{user}", "recording:v1")


def test_someone_cleared_for_every_case_of_the_recording_may_link_it(st: Station) -> None:
    made = st.svc.cases().link(st.who("secretary"), LEAKY, "v1", stage="现场检查",
                               reason="补充")
    assert made.recording_id == "v1" and made.active


def test_an_unlinked_recording_is_linked_as_before(st: Station) -> None:
    assert st.svc.cases().link(st.who("clerk2"), LEAKY, "v3", stage="现场检查",
                               reason="补充").active


# ---------------------------------------------------------------------- exports


def test_a_case_export_request_checks_every_items_own_labels(st: Station) -> None:
    with pytest.raises(HiddenItem) as caught:
        st.svc.exports().request(st.who("inspector"), case=LEAKY, purpose="行政复议",
                                 recipient="复议机关")
    assert caught.value.code == "E_ITEM_HIDDEN" and "v1" in caught.value.message
    assert SECRET not in caught.value.message
    assert st.events("export.request") == []
    assert st.events("access.refused")[-1].details["code"] == "E_ITEM_HIDDEN"


def test_approval_and_run_check_the_items_again(st: Station) -> None:
    """A request made while v3 was public; v3 then joins SECRET. The approver without
    the clearance is refused; so is the run, before anything is written."""
    exports = st.svc.exports()
    st.svc.cases().link(st.who("clerk"), LEAKY, "v3", stage="现场检查", reason="补充")
    with st.svc.catalog.transaction() as s:  # as if v1's raw link had never been
        bind(s, st.svc.audit(), CaseLink(case_id=Casebook(catalog=st.svc.catalog).case(LEAKY).id,
                                       recording_id="v1", action="unlink",
                                       unlinks=_link_id(st, "v1", LEAKY), stage="调查取证",
                                       actor="clerk2", reason="清理", at=T0),
             actor="user:clerk2", action="case.unlink", subjects=[], details={}, at=T0)
    request = exports.request(st.who("inspector"), case=LEAKY, purpose="行政复议",
                              recipient="复议机关")
    st.svc.cases().link(st.who("secretary"), SECRET, "v3", stage="调查取证", reason="涉密")
    with pytest.raises(HiddenItem):
        exports.approve(st.who("supervisor2"), request.id)
    exports.approve(st.who("supervisor"), request.id)
    out = st.svc.settings.home / "out"
    with pytest.raises(HiddenItem) as caught:
        exports.run(st.who("inspector"), request.id, out=out)
    assert "v3" in caught.value.message and not out.exists()
    assert exports.show(st.who("supervisor"), request.id).status == "approved"


def _link_id(st: Station, rid: str, number: str) -> int:
    case = Casebook(catalog=st.svc.catalog).case(number)
    return next(x.id for x in Casebook(catalog=st.svc.catalog).links(case_id=case.id)
                if x.recording_id == rid and x.active)


# ---------------------------------------------------------------------- reads, counts


def test_segments_and_the_recording_are_refused_through_the_public_case(
        st: Station) -> None:
    viewer = Viewer(catalog=st.svc.catalog, store=st.svc.store, gate=st.svc.gate())
    with pytest.raises(Forbidden):
        viewer.play(st.who("inspector"), "v1", 0, span=lambda size: (0, size))
    with pytest.raises(Forbidden):
        viewer.show(st.who("clerk2"), "v1")
    assert viewer.show(st.who("inspector"), "v2").recording.id == "v2"


def test_coverage_counts_the_secret_footage_only_as_hidden(st: Station) -> None:
    desk = CoverageDesk(catalog=st.svc.catalog, gate=st.svc.gate(),
                        settings=st.svc.settings.coverage, clock=st.svc.clock)
    seen = desk.run(st.who("inspector"), number=LEAKY)
    assert seen.hidden_recordings == 1
    assert '"v1"' not in json.dumps(seen.to_json())
    full = desk.run(st.who("supervisor"), number=LEAKY)
    assert full.hidden_recordings == 0 and '"v1"' in json.dumps(full.to_json())
    assert st.events("read.coverage")[-2].details["hidden_recordings"] == 1


# ---------------------------------------------------------------------- audit, holds


def test_an_events_subjects_govern_its_proof_and_its_place_in_a_list(st: Station) -> None:
    desk = st.audit_desk()
    secret = next(e.seq for e in st.events("case.create") if e.details["number"] == SECRET)
    link = next(e.seq for e in st.events("case.link") if "recording:v1" in e.subjects)
    for seq in (secret, link):
        with pytest.raises(Forbidden):
            desk.proof(st.who("supervisor2"), seq)
        assert desk.proof(st.who("supervisor"), seq)["seq"] == seq
    page = desk.events(st.who("supervisor2"), limit=1000)
    hidden = {e["seq"] for e in page["events"] if e.get("hidden")}
    assert {secret, link} <= hidden and page["hidden"] == len(hidden)
    assert SECRET not in json.dumps(page, ensure_ascii=False)


def test_holds_on_what_the_reader_may_not_see_are_left_out_and_not_released(
        st: Station) -> None:
    holds = st.svc.holds()
    secret = holds.add(st.who("supervisor"), scope="case", target=SECRET, reason="诉讼")
    on_v1 = holds.add(st.who("supervisor"), scope="recording", target="v1", reason="诉讼")
    public = holds.add(st.who("supervisor"), scope="case", target=LEAKY, reason="诉讼")
    shown, hidden = holds.listing(st.who("legal"))
    assert ([v.id for v in shown], hidden) == ([public.id], 2)
    for hold in (secret, on_v1):
        with pytest.raises(NotFound) as caught:
            holds.release(st.who("legal"), hold.id, reason="结案")
        assert caught.value.message == f"no hold {hold.id}"
        assert st.events("access.refused")[-1].subjects[0] == f"hold:{hold.id}"
    assert all(v.active for v in holds.views())
    with pytest.raises(Forbidden):
        holds.add(st.who("legal"), scope="recording", target="v1", reason="诉讼")
    assert holds.release(st.who("legal"), public.id, reason="结案").released_by == "legal"
