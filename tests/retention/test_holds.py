"""Legal holds on a real catalog: place, list, release by a second user (self-release
refused and audited), and each scope keeps footage that would otherwise be deleted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from evidock_testing import StepClock, offloaded_home, ok_json
from service_support import serving
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import Recording
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Conflict, Forbidden, InvalidRequest, NotFound, SelfApproval
from records.permissions import Actor
from retention.holds import HoldDesk
from retention.models import Hold, HoldRelease

T0 = StepClock().now  # when the template station ingested
NUMBER = "邵城管罚〔2025〕第007号"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Path:
    """A station home that has offloaded the template camera."""
    home = tmp_path_factory.mktemp("holds") / "home"
    return offloaded_home(home, camera_template.root, render=False)


@dataclass
class Station:
    svc: Services
    desk: HoldDesk
    recordings: list[Recording]

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))

    def decisions(self, day: float) -> dict[str, tuple[str, str]]:
        """recording id → (action, rule) at T0 + day."""
        found = self.svc.retention().decide(T0 + timedelta(days=day))
        return {d.recording_id: (d.action, d.rule) for d in found}


@pytest.fixture
def st(template: Path, tmp_path: Path) -> Iterator[Station]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(T0 + timedelta(days=1)))
    yield Station(svc, svc.holds(), svc.catalog.recordings())
    svc.close()


def test_add_list_and_release_by_another_user(st: Station) -> None:
    rec = st.recordings[0]
    placed = st.desk.add(st.who("legal"), scope="recording", target=f" {rec.id} ",
                         reason="行政复议")
    assert (placed.scope, placed.target, placed.placed_by) == ("recording", rec.id, "legal")
    assert placed.active and placed.reason == "行政复议"
    other = st.desk.add(st.who("supervisor"), scope="officer", target="123456", reason="投诉")
    assert [v.id for v in st.desk.list(st.who("supervisor"))] == [placed.id, other.id]

    released = st.desk.release(st.who("supervisor"), placed.id, reason="复议结束")

    assert not released.active and released.released_by == "supervisor"
    assert released.release_reason == "复议结束"
    assert [v.id for v in st.desk.list(st.who("legal"))] == [other.id]
    assert [v.id for v in st.desk.list(st.who("legal"), active_only=False)] == [
        placed.id, other.id]
    assert st.desk.active() == (other.ref(),)
    [add, _] = st.events("hold.add")
    assert add.actor == "user:legal" and add.subjects == [f"hold:{placed.id}",
                                                           f"recording:{rec.id}"]
    [rel] = st.events("hold.release")
    assert rel.actor == "user:supervisor" and rel.details["placed_by"] == "legal"
    assert len(st.events("read.hold.list")) == 3


def test_the_user_who_placed_a_hold_cannot_release_it(st: Station) -> None:
    hold = st.desk.add(st.who("legal"), scope="officer", target="123456", reason="投诉")
    with pytest.raises(SelfApproval):
        st.desk.release(st.who("legal"), hold.id, reason="自己撤销")
    assert st.desk.view(hold.id).active
    [refused] = st.events("access.refused")
    assert refused.actor == "user:legal" and refused.subjects == [f"hold:{hold.id}"]
    assert refused.details["code"] == "E_SELF_APPROVAL"
    assert refused.details["permission"] == "hold.release"
    assert st.events("hold.release") == []


def test_releasing_twice_is_a_conflict(st: Station) -> None:
    hold = st.desk.add(st.who("legal"), scope="officer", target="123456", reason="投诉")
    st.desk.release(st.who("supervisor"), hold.id, reason="结束")
    with pytest.raises(Conflict):
        st.desk.release(st.who("supervisor2"), hold.id, reason="again")
    with Session(st.svc.catalog.engine) as s:
        assert len(s.exec(select(HoldRelease)).all()) == 1
    assert len(st.events("hold.release")) == 1


def test_bad_holds_are_refused(st: Station) -> None:
    legal = st.who("legal")
    with pytest.raises(NotFound):
        st.desk.add(legal, scope="case", target="邵城管罚〔2099〕第999号", reason="x")
    with pytest.raises(NotFound):
        st.desk.add(legal, scope="recording", target="no-such-recording", reason="x")
    with pytest.raises(InvalidRequest):
        st.desk.add(legal, scope="officer", target="  ", reason="x")
    with pytest.raises(InvalidRequest):
        st.desk.add(legal, scope="officer", target="123456", reason=" ")
    with pytest.raises(InvalidRequest):
        st.desk.add(legal, scope="unit", target="城东中队", reason="x")
    with pytest.raises(Forbidden):
        st.desk.add(st.who("clerk"), scope="officer", target="123456", reason="x")
    with pytest.raises(Forbidden):
        st.desk.list(st.who("officer"))
    with pytest.raises(NotFound):
        st.desk.release(st.who("supervisor"), "no-such-hold", reason="x")
    with Session(st.svc.catalog.engine) as s:
        assert s.exec(select(Hold)).all() == []
    assert st.events("hold.add") == []


@pytest.mark.parametrize("scope", ["case", "recording", "officer"])
def test_each_scope_keeps_an_otherwise_due_recording(st: Station, scope: str) -> None:
    rec, untouched = st.recordings[0], st.recordings[1]
    clerk = st.who("clerk")
    cases = st.svc.cases()
    # opened and closed long ago (a closing is never dated before its case existed):
    # its 1095 days are over, so only the hold can keep the footage linked since
    clock = st.svc.clock
    assert isinstance(clock, StepClock)
    clock.now = T0 - timedelta(days=2001)
    cases.create(clerk, number=NUMBER, case_type="行政检查", unit="城东中队")
    cases.close(clerk, NUMBER, reason="结案")
    clock.now = T0 + timedelta(days=1)
    cases.link(clerk, NUMBER, rec.id, stage="现场检查", reason="检查记录")
    assert st.decisions(200)[rec.id] == ("delete", "base")
    target = {"case": NUMBER, "recording": rec.id, "officer": "123456"}[scope]

    hold = st.desk.add(st.who("legal"), scope=scope, target=target, reason="诉讼")

    held = st.decisions(200)
    assert held[rec.id] == ("keep", "hold")
    assert held[untouched.id] == (("keep", "hold") if scope == "officer" else
                                  ("delete", "base"))
    st.desk.release(st.who("supervisor"), hold.id, reason="判决生效")
    assert st.decisions(200)[rec.id] == ("delete", "base")


def test_a_case_hold_stores_the_case_id_and_shows_its_number(st: Station) -> None:
    case = st.svc.cases().create(st.who("clerk"), number=NUMBER, case_type="行政处罚",
                                 unit="城东中队")
    hold = st.desk.add(st.who("legal"), scope="case", target=NUMBER, reason="诉讼")
    assert (hold.target, hold.label) == (case.id, NUMBER)
    assert hold.ref().target == case.id


def test_cli_hold_add_list_release(st: Station) -> None:
    with serving(st.svc.settings.home) as svc:
        added = svc.cli("hold", "add", "--officer", "123456", "--reason", "投诉", "--json",
                        user="legal")
        hold_id = ok_json(added)["id"]
        both = svc.cli("hold", "add", "--officer", "1", "--case", "x", "--reason", "r",
                       "--json", user="legal")
        assert ok_json(both, 1)["error"]["code"] == "E_INVALID"
        listed = svc.cli("hold", "list", "--json", user="supervisor")
        assert [h["id"] for h in ok_json(listed)["holds"]] == [hold_id]
        people = svc.cli("hold", "list", user="supervisor")
        assert people.returncode == 0, people.stderr
        assert f"{hold_id}  officer:123456  by legal " in people.stdout
        assert people.stdout.endswith("active  投诉\n1 hold(s)\n")
        own = svc.cli("hold", "release", hold_id, "--reason", "r", "--json", user="legal")
        assert ok_json(own, 3)["error"]["code"] == "E_SELF_APPROVAL"
        refused = svc.cli("hold", "add", "--officer", "1", "--reason", "r", user="clerk")
        assert refused.returncode == 3 and "E_FORBIDDEN" in refused.stderr
        done = svc.cli("hold", "release", hold_id, "--reason", "结束", user="supervisor")
        assert done.returncode == 0 and "released_by: supervisor" in done.stdout
        every = svc.cli("hold", "list", "--all", "--json", user="supervisor")
        assert [h["active"] for h in ok_json(every)["holds"]] == [False]
        absent = svc.cli("hold", "release", "no/such hold", "--reason", "r", user="legal")
        assert absent.returncode == 1 and "E_NOT_FOUND" in absent.stderr
    # Who did what is the kernel's word, not the client's.
    [add] = st.events("hold.add")
    assert add.actor == "user:legal"
    [rel] = st.events("hold.release")
    assert rel.actor == "user:supervisor"
