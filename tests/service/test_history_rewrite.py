"""Issue 19 item 5: records that rewrite history.

A clerk backdating a case's closing (which starts its retention period) before the case
existed, or dating it in the future, is refused through the real service as the clerk's
own OS account; so is a clerk alone taking a permanent mark (作为证据使用) off what a legal
reviewer marked: that takes a request by one person and a confirmation by another who
holds ``recording.unmark`` (a legal reviewer), both audited. Desk-level tests cover the
other floors of a closing date (footage, stages, a reopening).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import StepClock, offloaded_home, ok_json
from service_support import RunningService, audit_rows, serving
from station_homes import copy_home

from archive.catalog import Recording
from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden, InvalidRequest, SelfApproval
from records.casebook import CaseView, LinkView
from records.closing import closing_floor
from records.marks import Unmarking
from records.models import CaseStage

NUMBER = "邵城管罚〔2026〕第019号"
EVIDENCE = "作为证据使用"
#: A second legal reviewer (the OS account evt-chief exists for such tests).
CHIEF = """
[[access.users]]
name = "chief"
os_users = ["evt-chief"]
roles = ["legal_reviewer"]
"""
T0 = StepClock().now  # when the template station ingested (2026-11-23 08:00 UTC)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory,
             camera_template: CameraTree) -> Path:
    home = tmp_path_factory.mktemp("history") / "home"
    return offloaded_home(home, camera_template.root, extra_toml=CHIEF, render=False)


@pytest.fixture
def home(template: Path, tmp_path: Path) -> Path:
    return copy_home(template, tmp_path)


@pytest.fixture
def station(home: Path) -> Iterator[RunningService]:
    with serving(home) as svc:
        yield svc


def _video(home: Path) -> str:
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}))
    try:
        return sorted(r.id for r in svc.catalog.recordings() if r.kind == "video")[0]
    finally:
        svc.close()


def _status(station: RunningService) -> tuple[str, str | None]:
    [case] = [c for c in ok_json(station.cli("case", "list", "--json"))["cases"]
              if c["number"] == NUMBER]
    return case["status"], case["closed_at"]


# ---------------------------------------------------------------------- closing dates


def test_a_clerk_cannot_backdate_a_closing_before_the_case_or_date_it_ahead(
        home: Path, station: RunningService) -> None:
    created = ok_json(station.cli("case", "create", NUMBER, "--type", "行政处罚", "--unit",
                                  "城东中队", "--json"))
    ahead = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    before = station.cli("case", "close", NUMBER, "--reason", "结案", "--date", "2020-01-01",
                         "--json")
    future = station.cli("case", "close", NUMBER, "--reason", "结案", "--date", ahead,
                         "--json")

    refused = ok_json(before, 1)["error"]
    assert refused["code"] == "E_INVALID" and "the case was created" in refused["message"]
    assert created["created_at"][:19].replace("T", " ") in refused["message"]
    assert ok_json(future, 1)["error"]["code"] == "E_INVALID"
    assert "after the station's clock" in ok_json(future, 1)["error"]["message"]
    assert _status(station) == ("open", None)
    assert audit_rows(home, "case.closed") == []

    closed = ok_json(station.cli("case", "close", NUMBER, "--reason", "结案", "--json"))
    ok_json(station.cli("case", "reopen", NUMBER, "--reason", "复议", "--json"))
    again = station.cli("case", "close", NUMBER, "--reason", "结案", "--date",
                        closed["closed_at"], "--json")  # before the reopening
    assert "the case was reopened" in ok_json(again, 1)["error"]["message"]
    assert _status(station) == ("open", None)
    assert len(audit_rows(home, "case.closed")) == 1


@pytest.fixture
def desk_station(home: Path) -> Iterator[tuple[Services, StepClock]]:
    clock = StepClock(T0 - timedelta(days=30))
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=clock)
    yield svc, clock
    svc.close()


def test_a_closing_date_is_never_before_linked_footage_or_a_stage_ended(
        home: Path, desk_station: tuple[Services, StepClock]) -> None:
    svc, clock = desk_station
    desk, clerk = svc.cases(), svc.gate().by_name("clerk")
    desk.create(clerk, number=NUMBER, case_type="行政处罚", unit="城东中队")  # T0 - 30 d
    clock.now = T0 + timedelta(days=5)
    desk.link(clerk, NUMBER, _video(home), stage="立案", reason="现场")
    with pytest.raises(InvalidRequest, match="footage .* linked to it was recorded"):
        desk.close(clerk, NUMBER, reason="结案", closed_at=datetime(2026, 11, 15, tzinfo=UTC))
    desk.stage(clerk, NUMBER, stage="立案", start_at=datetime(2026, 11, 25, tzinfo=UTC),
               end_at=datetime(2026, 11, 27, tzinfo=UTC))
    with pytest.raises(InvalidRequest, match="its stage 立案 ended") as refused:
        desk.close(clerk, NUMBER, reason="结案", closed_at=datetime(2026, 11, 21, tzinfo=UTC))
    assert refused.value.details["earliest"] == datetime(2026, 11, 27, tzinfo=UTC)
    assert desk.book.case(NUMBER).status == "open"

    when = datetime(2026, 11, 27, 12, tzinfo=UTC)
    closed = desk.close(clerk, NUMBER, reason="结案", closed_at=when)

    assert (closed.status, closed.closed_at) == ("closed", when)


def test_camera_and_typed_times_bound_a_closing_no_later_than_the_station_saw_them(
) -> None:
    at = datetime(2026, 1, 10, tzinfo=UTC)
    case = CaseView(id="c", number="n", case_type="t", unit="u", title="", sensitivity="none",
                    status="open", closed_at=None, created_by="clerk", created_at=at)
    link = LinkView(id=1, case_id="c", recording_id="r", stage="s", start_us=None,
                    end_us=None, actor="clerk", reason="r", at=at, removed=None)
    rec = Recording(id="r", blake3="b", sha256="s", size=1, kind="video",
                    camera_start=datetime(2031, 1, 1, tzinfo=UTC),  # camera clock ahead
                    ingested_at=datetime(2026, 1, 12, tzinfo=UTC))
    stage = CaseStage(case_id="c", stage="s", start_at=at,
                      end_at=datetime(2030, 1, 1, tzinfo=UTC), actor="clerk",
                      at=datetime(2026, 1, 11, tzinfo=UTC))  # a typed future end

    floor = closing_floor(case, events=[], links=[link], recordings={"r": rec},
                          stages=[stage])

    assert (floor.at, floor.what) == (datetime(2026, 1, 12, tzinfo=UTC),
                                      "footage r linked to it was recorded")


# ---------------------------------------------------------------------- permanent marks


def _marks(station: RunningService, rid: str) -> list[str]:
    shown = ok_json(station.cli("recording", "show", rid, "--json"))
    marks: list[str] = shown["recording"]["marks"]
    return marks


def test_a_clerk_alone_cannot_take_a_permanent_mark_off(
        home: Path, station: RunningService) -> None:
    rid = _video(home)
    ok_json(station.cli("recording", "mark", rid, EVIDENCE, "--reason", "证据", "--json",
                        user="legal"))

    def unmark(user: str) -> object:
        return station.cli("recording", "mark", rid, EVIDENCE, "--reason", "误标",
                           "--remove", "--json", user=user)

    requested = ok_json(unmark("clerk"))
    self_confirm = unmark("clerk")
    other_clerk = unmark("clerk2")

    assert requested["removal"] == {"mark": EVIDENCE, "status": "requested",
                                    "requested_by": "clerk", "confirmed_by": None}
    assert requested["marks"] == [EVIDENCE]
    assert ok_json(self_confirm, 3)["error"]["code"] == "E_SELF_APPROVAL"
    assert ok_json(other_clerk, 3)["error"]["code"] == "E_FORBIDDEN"
    assert _marks(station, rid) == [EVIDENCE]
    assert audit_rows(home, "recording.mark.remove") == []
    refusals = {(e.actor, e.details["code"], e.details["permission"])
                for e in audit_rows(home, "access.refused")}
    assert refusals == {("user:clerk", "E_SELF_APPROVAL", "recording.unmark"),
                        ("user:clerk2", "E_FORBIDDEN", "recording.unmark")}

    confirmed = ok_json(unmark("legal"))

    assert confirmed["removal"] == {"mark": EVIDENCE, "status": "removed",
                                    "requested_by": "clerk", "confirmed_by": "legal"}
    assert confirmed["marks"] == [] and _marks(station, rid) == []
    [request] = audit_rows(home, "recording.mark.remove_request")
    [removal] = audit_rows(home, "recording.mark.remove")
    assert (request.actor, removal.actor) == ("user:clerk", "user:legal")
    assert removal.details["requested_by"] == "clerk"
    assert removal.subjects == [f"recording:{rid}"]


def test_a_legal_reviewer_alone_cannot_either_and_ordinary_marks_come_off_at_once(
        home: Path, desk_station: tuple[Services, StepClock]) -> None:
    svc, clock = desk_station
    clock.now = T0 + timedelta(days=1)
    desk, gate = svc.cases(), svc.gate()
    legal, chief, clerk = gate.by_name("legal"), gate.by_name("chief"), gate.by_name("clerk")
    rid = _video(home)
    desk.mark(clerk, rid, mark="妨碍执法", reason="现场阻挠")
    desk.mark(clerk, rid, mark="复核", reason="待复核")  # not a permanent mark

    first = desk.mark(legal, rid, mark="妨碍执法", reason="误标", remove=True)
    with pytest.raises(SelfApproval):
        desk.mark(legal, rid, mark="妨碍执法", reason="误标", remove=True)
    with pytest.raises(Forbidden):
        desk.mark(clerk, rid, mark="妨碍执法", reason="同意", remove=True)
    assert isinstance(first, Unmarking) and first.marks == {"妨碍执法", "复核"}
    plain = desk.mark(clerk, rid, mark="复核", reason="已复核", remove=True)
    assert plain.marks == {"妨碍执法"}

    done = desk.mark(chief, rid, mark="妨碍执法", reason="同意", remove=True)

    assert isinstance(done, Unmarking) and done.marks == frozenset()
    assert (done.requested_by, done.confirmed_by) == ("legal", "chief")
    # put on again, a new removal needs a new request: the old one is spent
    desk.mark(clerk, rid, mark="妨碍执法", reason="复查确认")
    again = desk.mark(chief, rid, mark="妨碍执法", reason="r", remove=True)
    assert isinstance(again, Unmarking) and again.status == "requested"
