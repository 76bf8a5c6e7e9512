"""Cases, links, documents, marks and finding footage, on a real catalog and store.

One camera is offloaded and rendered (1 s segments) once per module; each test works on
its own copy of that station, so tests neither see nor disturb each other's rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import pytest
from evidock_testing import StepClock, offloaded_home
from sqlmodel import Session, col, func, select
from station_homes import SECRETARY, SHORT_SEGMENTS

from archive.audit.log import AuditEvent
from archive.catalog import Blob, Recording
from archive.catalog.models import Rendition, Segment
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Conflict, EvidockError, Forbidden, InvalidRequest, NotFound
from records.cases import CaseDesk
from records.dossier import Dossier, fold_marks
from records.models import Case, CaseAttachment, CaseLink, ExportRequest, RecordingMark
from records.package import Exporter, covering
from records.permissions import Actor

NUMBER = "邵城管罚〔2019〕第001号"
#: A clerk cleared for every label (no AGENCY_TOML user both creates cases and may see
#: 国家秘密), and 1 s segments so a few seconds of footage make several segments.
EXTRA = SECRETARY + SHORT_SEGMENTS


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Path:
    """A station home that has offloaded and rendered the template camera."""
    home = tmp_path_factory.mktemp("cases") / "home"
    return offloaded_home(home, camera_template.root, extra_toml=EXTRA)


@dataclass
class Station:
    svc: Services
    desk: CaseDesk
    dossier: Dossier
    videos: list[Recording]  # by camera start
    recordings: list[Recording]

    def who(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)

    def count(self, model: type, *where: Any) -> int:
        with Session(self.svc.catalog.engine) as s:
            return s.exec(select(func.count()).select_from(model).where(*where)).one()

    def events(self, action: str) -> list[AuditEvent]:
        with Session(self.svc.catalog.engine) as s:
            return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                               .order_by(col(AuditEvent.seq))))


@pytest.fixture
def st(template: Path, tmp_path: Path) -> Iterator[Station]:
    home = tmp_path / "home"
    shutil.copytree(template, home)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(datetime(2026, 12, 1, tzinfo=UTC)))
    recs = svc.catalog.recordings()
    videos = sorted((r for r in recs if r.kind == "video"),
                    key=lambda r: r.camera_start or r.ingested_at)
    yield Station(svc, svc.cases(), svc.dossier(), videos, recs)
    svc.close()


def _case(st: Station, number: str = NUMBER, *, user: str = "clerk", unit: str = "城东中队",
          sensitivity: str = "none") -> str:
    return st.desk.create(st.who(user), number=number, case_type="行政处罚", unit=unit,
                          sensitivity=sensitivity).id


# ---------------------------------------------------------------------- links


def test_unlink_adds_a_row_naming_the_link_and_show_keeps_it_as_removed(st: Station) -> None:
    clerk = st.who("clerk")
    case_id = _case(st)
    video = st.videos[0]
    link = st.desk.link(clerk, NUMBER, video.id, stage="立案", reason="现场执法全程")
    assert [f.recording.id for f in st.dossier.find(clerk, case=NUMBER)] == [video.id]

    removed = st.desk.unlink(clerk, link.id, reason="关联错误")

    assert removed.id == link.id and not removed.active
    assert removed.removed is not None and removed.removed.reason == "关联错误"
    with Session(st.svc.catalog.engine) as s:
        rows = s.exec(select(CaseLink).order_by(col(CaseLink.id))).all()
    assert [(r.action, r.unlinks) for r in rows] == [("link", None), ("unlink", link.id)]
    shown = st.dossier.show(clerk, NUMBER)
    assert [(x.id, x.active) for x in shown.links] == [(link.id, False)]
    assert json.loads(json.dumps(shown.to_json()))["links"][0]["removed"]["reason"] == \
        "关联错误"
    assert st.dossier.find(clerk, case=NUMBER) == []
    with pytest.raises(Conflict):
        st.desk.unlink(clerk, link.id, reason="again")
    assert st.count(CaseLink) == 2
    assert [e.subjects for e in st.events("case.unlink")] == [
        [f"case:{case_id}", f"recording:{video.id}"]]


def test_a_linked_range_maps_to_the_segments_covering_it(st: Station) -> None:
    video = st.videos[0]
    link = st.desk.link(st.who("clerk"), _case(st), video.id, stage="调查取证",
                        reason="询问过程", start_us=1_500_000, end_us=2_500_000)
    with Session(st.svc.catalog.engine) as s:
        rendition = s.exec(select(Rendition).where(Rendition.recording_id == video.id,
                                                   Rendition.status == "ok")).one()
        segments = list(s.exec(select(Segment).where(Segment.rendition_id == rendition.id)
                               .order_by(col(Segment.index))))
    assert link.start_us is not None and link.end_us is not None
    chosen = covering(segments, link.start_us, link.end_us)
    assert len(chosen) >= 2
    assert chosen[0].start_us <= link.start_us < link.end_us <= chosen[-1].end_us


@pytest.mark.parametrize("start_us,end_us", [(-1, None), (2_000_000, 2_000_000)])
def test_a_bad_range_is_refused(st: Station, start_us: int, end_us: int | None) -> None:
    _case(st)
    with pytest.raises(InvalidRequest):
        st.desk.link(st.who("clerk"), NUMBER, st.videos[0].id, stage="立案", reason="r",
                     start_us=start_us, end_us=end_us)
    assert st.count(CaseLink) == 0


def test_linking_an_unknown_recording_is_not_found(st: Station) -> None:
    _case(st)
    with pytest.raises(NotFound):
        st.desk.link(st.who("clerk"), NUMBER, "no-such-recording", stage="立案", reason="r")
    assert st.count(CaseLink) == 0


# ---------------------------------------------------------------------- vocabulary


@pytest.mark.parametrize("number", ["2019-001", "邵城管罚〔2019〕第001号 extra", "", "〔2019〕1号"])
def test_an_invalid_case_number_is_refused_and_nothing_written(st: Station,
                                                               number: str) -> None:
    before = st.svc.audit().size()
    with pytest.raises(InvalidRequest) as err:
        _case(st, number)
    assert err.value.code == "E_INVALID"
    assert st.count(Case) == 0
    assert st.svc.audit().size() == before


@pytest.mark.parametrize("field,value", [("case_type", "刑事案件"), ("unit", "城南中队"),
                                         ("sensitivity", "绝密")])
def test_unknown_type_unit_or_label_is_refused(st: Station, field: str, value: str) -> None:
    args = {"number": NUMBER, "case_type": "行政处罚", "unit": "城东中队",
            "sensitivity": "none", field: value}
    with pytest.raises(InvalidRequest) as err:
        st.desk.create(st.who("clerk"), **args)
    assert value in err.value.message
    assert st.count(Case) == 0


def test_unknown_stage_is_refused(st: Station) -> None:
    _case(st)
    with pytest.raises(InvalidRequest, match="unknown stage"):
        st.desk.link(st.who("clerk"), NUMBER, st.videos[0].id, stage="喝茶", reason="r")
    assert st.count(CaseLink) == 0


def test_a_duplicate_case_number_is_a_conflict(st: Station) -> None:
    _case(st)
    with pytest.raises(Conflict):
        _case(st, unit="城西中队")
    assert st.count(Case) == 1


# ---------------------------------------------------------------------- who sees what


def test_a_state_secret_case_is_invisible_to_a_clerk_and_visible_to_a_supervisor(
        st: Station) -> None:
    secret, plain = "城管强〔2026〕第7号", NUMBER
    _case(st, secret, user="secretary", sensitivity="国家秘密")
    _case(st, plain)
    secret_video, plain_video = st.videos[0], st.videos[1]
    st.desk.link(st.who("secretary"), secret, secret_video.id, stage="立案", reason="r")
    st.desk.link(st.who("clerk"), plain, plain_video.id, stage="立案", reason="r")
    clerk, boss = st.who("clerk"), st.who("supervisor")

    assert [c.number for c in st.dossier.list(clerk)] == [plain]
    assert [c.number for c in st.dossier.list(boss)] == [secret, plain]
    clerk_sees = {f.recording.id for f in st.dossier.find(clerk)}
    assert plain_video.id in clerk_sees and secret_video.id not in clerk_sees
    found = {f.recording.id: f for f in st.dossier.find(boss)}
    assert found[secret_video.id].sensitivity == "国家秘密"
    assert [x.case_number for x in found[secret_video.id].links] == [secret]

    with pytest.raises(Forbidden) as err:
        st.dossier.show(clerk, secret)
    assert err.value.code == "E_FORBIDDEN"
    refused = st.events("access.refused")
    assert [(e.actor, e.details["permission"]) for e in refused] == [("user:clerk",
                                                                      "case.view")]
    assert st.dossier.show(boss, secret).case.sensitivity == "国家秘密"


def test_a_recording_is_as_secret_as_its_strictest_case(st: Station) -> None:
    _case(st)
    _case(st, "城管强〔2026〕第7号", user="secretary", sensitivity="国家秘密")
    video = st.videos[0]
    st.desk.link(st.who("clerk"), NUMBER, video.id, stage="立案", reason="r")
    st.desk.link(st.who("secretary"), "城管强〔2026〕第7号", video.id, stage="立案",
                 reason="r")
    clerk = st.who("clerk")

    dossier = st.dossier.show(clerk, NUMBER)  # the case itself is visible
    assert dossier.recordings == () and dossier.hidden_recordings == 1
    assert video.id not in {f.recording.id for f in st.dossier.find(clerk)}
    with pytest.raises(Forbidden):
        st.desk.mark(clerk, video.id, mark="作为证据使用", reason="r")
    assert st.count(RecordingMark) == 0


def test_a_unit_restricted_clerk_sees_only_their_units_cases(st: Station) -> None:
    east, west = NUMBER, "邵城管罚〔2019〕第002号"
    _case(st, east)
    _case(st, west, unit="城西中队")
    st.desk.link(st.who("clerk"), east, st.videos[0].id, stage="立案", reason="r")
    st.desk.link(st.who("clerk2"), west, st.videos[1].id, stage="立案", reason="r")
    clerk2 = st.who("clerk2")

    assert [c.number for c in st.dossier.list(clerk2)] == [west]
    assert st.dossier.list(clerk2, unit="城东中队") == []
    seen = {f.recording.id for f in st.dossier.find(clerk2)}
    assert st.videos[1].id in seen and st.videos[0].id not in seen
    with pytest.raises(Forbidden):
        st.dossier.show(clerk2, east)
    with pytest.raises(Forbidden):
        st.desk.link(clerk2, east, st.videos[2].id, stage="立案", reason="r")
    assert [c.number for c in st.dossier.list(st.who("clerk"))] == [east, west]


@pytest.mark.parametrize("act", ["create", "link"])
def test_an_officer_may_not_create_or_link_and_the_refusal_is_audited(st: Station,
                                                                      act: str) -> None:
    officer = st.who("officer")
    if act == "link":
        _case(st)
    with pytest.raises(Forbidden):
        if act == "create":
            _case(st, user="officer")
        else:
            st.desk.link(officer, NUMBER, st.videos[0].id, stage="立案", reason="r")
    refused = st.events("access.refused")
    assert [(e.actor, e.details["permission"]) for e in refused] == [
        ("user:officer", f"case.{act}")]
    assert st.count(Case) == (1 if act == "link" else 0)
    assert st.count(CaseLink) == 0


def test_reads_are_audited_with_what_was_shown_and_hidden(st: Station) -> None:
    case_id = _case(st)
    _case(st, "城管强〔2026〕第7号", user="secretary", sensitivity="国家秘密")
    video = st.videos[0]
    st.desk.link(st.who("clerk"), NUMBER, video.id, stage="立案", reason="r")
    clerk = st.who("clerk")

    st.dossier.show(clerk, NUMBER)
    st.dossier.list(clerk)
    st.dossier.find(clerk, case=NUMBER)

    (show,) = st.events("read.case.show")
    assert show.actor == "user:clerk"
    assert show.subjects == [f"case:{case_id}", f"recording:{video.id}"]
    (listed,) = st.events("read.case.list")
    assert listed.subjects == [f"case:{case_id}"]
    assert (listed.details["shown"], listed.details["hidden"]) == (1, 1)
    (found,) = st.events("read.case.find")
    assert found.subjects == [f"recording:{video.id}"]
    assert found.details["filters"]["case"] == NUMBER


def test_an_admin_may_not_list_or_find_and_the_refusal_is_audited(st: Station) -> None:
    admin = st.who("admin")
    with pytest.raises(Forbidden):
        st.dossier.list(admin)
    with pytest.raises(Forbidden):
        st.dossier.find(admin)
    assert [e.actor for e in st.events("access.refused")] == ["user:admin"] * 2
    assert st.events("read.case.list") == []


# ---------------------------------------------------------------------- finding


def test_find_combines_filters_on_officer_device_unit_stage_and_time(st: Station) -> None:
    clerk = st.who("clerk")
    first, second, third = st.videos
    _case(st)
    _case(st, "邵城管罚〔2019〕第002号", unit="城西中队")
    st.desk.link(clerk, NUMBER, first.id, stage="立案", reason="r")
    st.desk.link(clerk, "邵城管罚〔2019〕第002号", second.id, stage="调查取证", reason="r")

    def ids(**kw: object) -> list[str]:
        return [f.recording.id for f in st.dossier.find(clerk, **kw)]  # type: ignore[arg-type]

    assert ids(unit="城东中队") == [first.id]
    assert ids(stage="调查取证") == [second.id]
    assert ids(unit="城东中队", stage="调查取证") == []  # one link must match both
    assert set(ids(officer="123456", device="ZFY0001")) == {r.id for r in st.recordings}
    assert ids(officer="654321") == [] and ids(device="ZFY9999") == []
    assert second.camera_start is not None and third.camera_start is not None
    window = ids(since=second.camera_start, until=third.camera_start)
    assert window == [second.id]  # since inclusive, until exclusive
    assert ids(since=second.camera_start, until=third.camera_start, unit="城东中队") == []


def test_find_falls_back_to_ingest_time_when_the_camera_gave_none(st: Station) -> None:
    undated = [r for r in st.recordings if r.camera_start is None]
    assert undated, "the camera's log file has no start time in its name"
    first_ingest = min(r.ingested_at for r in st.recordings)
    found = [f.recording.id for f in st.dossier.find(st.who("clerk"), since=first_ingest)]
    assert found == [r.id for r in undated]


def test_find_refuses_a_naive_or_empty_window(st: Station) -> None:
    clerk = st.who("clerk")
    with pytest.raises(InvalidRequest):
        st.dossier.find(clerk, since=datetime(2026, 11, 20))
    when = datetime(2026, 11, 20, tzinfo=UTC)
    with pytest.raises(InvalidRequest):
        st.dossier.find(clerk, since=when, until=when)


def test_show_lists_stages_documents_and_the_cases_exports(st: Station,
                                                           tmp_path: Path) -> None:
    clerk = st.who("clerk")
    case_id = _case(st)
    video = st.videos[0]
    st.desk.link(clerk, NUMBER, video.id, stage="立案", reason="r")
    st.desk.stage(clerk, NUMBER, stage="立案", start_at=datetime(2026, 11, 20, 8, 29,
                                                                 tzinfo=UTC),
                  end_at=datetime(2026, 11, 20, 8, 40, tzinfo=UTC), note="笔录第3页")
    doc = tmp_path / "立案审批表.pdf"
    doc.write_bytes(b"%PDF-1.4 approval")
    st.desk.attach(clerk, NUMBER, doc)
    with st.svc.catalog.transaction() as s:
        s.add(ExportRequest(id="req1", case_id=case_id, recording_id=video.id,
                            purpose="诉讼", recipient="法院", requested_by="clerk",
                            at=st.svc.clock()))
    exporter = Exporter(store=st.svc.store, catalog=st.svc.catalog, keys=st.svc.keys,
                        clock=st.svc.clock, station_id=st.svc.settings.station.id)
    made = exporter.export(video.id, start="0", end="1", out=tmp_path / "pkg",
                           actor="user:inspector", request_id="req1")
    exporter.export(video.id, start="0", end="1", out=tmp_path / "other",
                    actor="user:inspector")  # not for this case

    shown = st.dossier.show(clerk, NUMBER)

    assert [(x.stage, x.note) for x in shown.stages] == [("立案", "笔录第3页")]
    assert [a.filename for a in shown.attachments] == ["立案审批表.pdf"]
    assert [e.id for e in shown.exports] == [made.export_id]
    assert json.loads(json.dumps(shown.to_json()))["exports"][0]["request_id"] == "req1"


# ---------------------------------------------------------------------- documents


def test_an_attachment_is_stored_by_hash_with_its_blob(st: Station, tmp_path: Path) -> None:
    case_id = _case(st)
    data = "询问笔录：当事人张某……".encode() * 1000
    doc = tmp_path / "询问笔录.docx"
    doc.write_bytes(data)

    row = st.desk.attach(st.who("clerk"), NUMBER, doc, description="第一次询问")

    assert row.blake3 == blake3.blake3(data).hexdigest()
    assert row.sha256 == hashlib.sha256(data).hexdigest()
    assert (row.size, row.filename, row.case_id) == (len(data), "询问笔录.docx", case_id)
    assert st.svc.store.path_for(row.blake3).read_bytes() == data
    with Session(st.svc.catalog.engine) as s:
        blob = s.get(Blob, row.blake3)
    assert blob is not None and blob.sha256 == row.sha256
    (event,) = st.events("case.attach")
    assert event.subjects == [f"case:{case_id}", f"blob:{row.blake3}"]
    again = st.desk.attach(st.who("clerk"), NUMBER, doc)  # same bytes: one blob
    assert again.blake3 == row.blake3 and again.id != row.id
    assert st.count(Blob, Blob.blake3 == row.blake3) == 1


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory", "empty"])
def test_an_attachment_must_be_a_regular_nonempty_file(st: Station, tmp_path: Path,
                                                       kind: str) -> None:
    _case(st)
    real = tmp_path / "real.pdf"
    real.write_bytes(b"%PDF-1.4 real")
    path = tmp_path / "odd"
    if kind == "symlink":
        path.symlink_to(real)
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path.write_bytes(b"")
    with pytest.raises(InvalidRequest):
        st.desk.attach(st.who("clerk"), NUMBER, path)
    assert st.count(CaseAttachment) == 0
    assert st.events("case.attach") == []


def test_attaching_needs_the_permission(st: Station, tmp_path: Path) -> None:
    _case(st)
    doc = tmp_path / "a.pdf"
    doc.write_bytes(b"%PDF")
    with pytest.raises(Forbidden):
        st.desk.attach(st.who("inspector"), NUMBER, doc)
    assert st.count(CaseAttachment) == 0


# ---------------------------------------------------------------------- marks


def test_marks_are_added_removed_and_the_latest_category_wins(st: Station) -> None:
    clerk, legal = st.who("clerk"), st.who("legal")
    rid = st.videos[0].id
    assert st.desk.mark(clerk, rid, mark="作为证据使用", reason="立案证据").marks == {
        "作为证据使用"}
    with pytest.raises(Conflict):
        st.desk.mark(clerk, rid, mark="作为证据使用", reason="again")
    st.desk.mark(legal, rid, mark="妨碍执法", reason="r")
    # a permanent mark comes off by two people: a request, then a legal reviewer's yes
    asked = st.desk.mark(clerk, rid, mark="作为证据使用", reason="误标", remove=True)
    assert asked.marks == {"作为证据使用", "妨碍执法"}
    state = st.desk.mark(legal, rid, mark="作为证据使用", reason="误标", remove=True)
    assert state.marks == {"妨碍执法"}
    with pytest.raises(Conflict):
        st.desk.mark(clerk, rid, mark="作为证据使用", reason="r", remove=True)
    st.desk.categorize(clerk, rid, category="日常巡查", reason="r")
    state = st.desk.categorize(clerk, rid, category="交通", reason="r")
    assert (state.marks, state.category) == (frozenset({"妨碍执法"}), "交通")
    assert [e.action for e in st.events("recording.mark.remove")] == ["recording.mark.remove"]
    (found,) = [f for f in st.dossier.find(clerk) if f.recording.id == rid]
    assert (found.recording.marks, found.recording.category) == (frozenset({"妨碍执法"}),
                                                                  "交通")


@pytest.mark.parametrize("user,mark,reason,error", [
    ("officer", "作为证据使用", "r", Forbidden),
    ("clerk", "  ", "r", InvalidRequest),
    ("clerk", "作为证据使用", " ", InvalidRequest),
])
def test_a_mark_needs_permission_a_value_and_a_reason(st: Station, user: str, mark: str,
                                                      reason: str,
                                                      error: type[EvidockError]) -> None:
    with pytest.raises(error):
        st.desk.mark(st.who(user), st.videos[0].id, mark=mark, reason=reason)
    with pytest.raises(NotFound):
        st.desk.categorize(st.who("clerk"), "no-such-recording", category="x", reason="r")
    assert st.count(RecordingMark) == 0


def test_fold_marks_follows_row_ids_not_list_order() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def row(i: int, kind: str, value: str, action: str = "add") -> RecordingMark:
        return RecordingMark(id=i, recording_id="r", kind=kind, value=value, action=action,
                             actor="clerk", reason="r", at=at)

    rows = [row(4, "mark", "A", "remove"), row(1, "mark", "A"), row(3, "category", "交通"),
            row(2, "category", "日常巡查"), row(5, "mark", "B")]
    assert fold_marks(rows) == (frozenset({"B"}), "交通")
    assert fold_marks([]) == (frozenset(), None)
