"""Review decisions at the desk: who counts as the case's clerk, what a decision needs,
and that the rows are append-only (the database refuses UPDATE and DELETE)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from evidock_testing import StepClock, offloaded_home
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from config import load_settings
from evidock.wiring import Services
from fixtures.camera import CameraTree
from integrity.errors import Forbidden, InvalidRequest, SelfApproval
from records.permissions import DEFAULT_ROLES, Actor, P
from records.reviews import ReviewDesk

# Every clerk may also review here, so that the clerk rule (not the missing permission)
# is what refuses a clerk who worked on the case.
_CLERK = sorted({*DEFAULT_ROLES["clerk"], P.CASE_REVIEW})
ROLES = "\n[access.roles]\nclerk = [" + ", ".join(f'"{p.value}"' for p in _CLERK) + "]\n"


@dataclass
class Desk:
    svc: Services
    reviews: ReviewDesk
    video: str
    doc: Path

    def actor(self, name: str) -> Actor:
        return self.svc.gate().by_name(name)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory, camera_template: CameraTree,
         ) -> Iterator[Desk]:
    root = tmp_path_factory.mktemp("reviews")
    home = offloaded_home(root / "home", camera_template.root, extra_toml=ROLES)
    svc = Services.from_config(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                               clock=StepClock(datetime(2026, 12, 1, 1, 0, tzinfo=UTC)))
    video = next(r.id for r in svc.catalog.recordings() if r.kind == "video")
    doc = root / "询问笔录.txt"
    doc.write_text("询问笔录", encoding="utf-8")
    try:
        yield Desk(svc, ReviewDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                                   clock=svc.clock), video, doc)
    finally:
        svc.close()


def _case(d: Desk, number: str) -> str:
    d.svc.cases().create(d.actor("clerk"), number=number, case_type="行政检查",
                         unit="城西中队")
    return number


WORK = ("created", "linked", "unlinked", "stage", "attached")


@pytest.mark.parametrize("work", WORK)
def test_whoever_did_clerk_work_on_the_case_may_not_review_it(desk: Desk, work: str) -> None:
    number = _case(desk, f"邵城管检〔2019〕第3{WORK.index(work):02d}号")
    cases, clerk2 = desk.svc.cases(), desk.actor("clerk2")
    worker = "clerk" if work == "created" else "clerk2"
    if work == "linked":
        cases.link(clerk2, number, desk.video, stage="现场检查", reason="现场")
    elif work == "unlinked":
        link = cases.link(desk.actor("clerk"), number, desk.video, stage="现场检查",
                          reason="现场")
        cases.unlink(clerk2, link.id, reason="错误")
    elif work == "stage":
        cases.stage(clerk2, number, stage="现场检查",
                    start_at=datetime(2026, 11, 20, 8, tzinfo=UTC),
                    end_at=datetime(2026, 11, 20, 9, tzinfo=UTC))
    elif work == "attached":
        cases.attach(clerk2, number, desk.doc)
    with pytest.raises(SelfApproval) as refused:
        desk.reviews.decide(desk.actor(worker), number, decision="同意", reason="审核")
    event = desk.svc.audit().event(refused.value.details["audit_seq"])
    assert event is not None and event.action == "access.refused"
    assert (event.actor, event.details["code"]) == (f"user:{worker}", "E_SELF_APPROVAL")
    # the legal reviewer did none of it
    done = desk.reviews.decide(desk.actor("legal"), number, decision="同意", reason="审核")
    assert done.actor == "legal" and done.decision == "同意"


def test_a_decision_needs_a_known_word_a_reason_and_the_permission(desk: Desk) -> None:
    number = _case(desk, "邵城管检〔2019〕第390号")
    legal = desk.actor("legal")
    with pytest.raises(InvalidRequest):
        desk.reviews.decide(legal, number, decision="approve", reason="x")
    with pytest.raises(InvalidRequest):
        desk.reviews.decide(legal, number, decision="不同意", reason="  ")
    with pytest.raises(Forbidden) as no:
        desk.reviews.decide(desk.actor("inspector"), number, decision="同意", reason="x")
    assert not isinstance(no.value, SelfApproval)
    assert desk.reviews.list(legal, number)[1] == ()


def test_decisions_are_append_only_and_the_last_is_in_force(desk: Desk) -> None:
    number = _case(desk, "邵城管检〔2019〕第391号")
    legal = desk.actor("legal")
    first = desk.reviews.decide(legal, number, decision="暂不同意", reason="补充材料")
    last = desk.reviews.decide(legal, number, decision="同意", reason="已补充")
    _, listed = desk.reviews.list(desk.actor("inspector"), number)
    assert [r.id for r in listed] == [first.id, last.id] and listed[-1].decision == "同意"
    assert desk.svc.audit().event(last.audit_seq).details["decision"] == "同意"  # type: ignore[union-attr]
    for stmt in ("UPDATE casereview SET decision = '同意' WHERE id = :i",
                 "DELETE FROM casereview WHERE id = :i"):
        with pytest.raises(SQLAlchemyError, match="append-only"), \
                desk.svc.catalog.engine.begin() as conn:
            conn.execute(text(stmt), {"i": first.id})
    _, again = desk.reviews.list(legal, number)
    assert [(r.decision, r.reason) for r in again] == [("暂不同意", "补充材料"), ("同意", "已补充")]


def test_a_decision_row_without_its_audit_event_is_not_believed(desk: Desk) -> None:
    """Tried as an attacker with database access: an 同意 inserted directly."""
    from sqlmodel import Session

    from archive.bindings import check_all

    number = _case(desk, "邵城管检〔2019〕第392号")
    legal = desk.actor("legal")
    real = desk.reviews.decide(legal, number, decision="不同意", reason="证据不足")
    case_id = desk.svc.cases().book.case(number).id
    with desk.svc.catalog.engine.begin() as conn:
        forged = conn.execute(text(
            "INSERT INTO casereview (case_id, decision, reason, actor, at) VALUES "
            "(:c, '同意', '伪造', 'legal', '2026-12-01 02:00:00') RETURNING id"),
            {"c": case_id}).scalar_one()
    _, listed = desk.reviews.list(legal, number)
    assert [r.id for r in listed] == [real.id]  # the forged one is not in force
    with Session(desk.svc.catalog.engine) as s:
        findings, _ = check_all(s)
    assert f"casereview:{forged}" in {f.subject for f in findings}
    assert f"casereview:{real.id}" not in {f.subject for f in findings}
