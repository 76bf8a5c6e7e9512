"""A row written into the catalog behind evidock's back keeps footage longer, never shorter.

The attacker has the database but not the signed log. Every row that would let footage go
sooner — a permanent mark removed, a category set, a link removed, a case closed early —
and a label lowered is believed only when its audit event vouches for it
(archive/bindings.py `vouched_if`). The same changes made through the desks count.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from evidock_testing import StepClock, open_services, write_agency_config
from stats_support import footage

from config import load_settings
from evidock.wiring import Services
from records.models import CaseEvent, CaseLink, RecordingMark
from retention.items import ItemSource

CASE = "邵城管罚〔2019〕第061号"
SECRET = "邵城管罚〔2019〕第062号"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
EXTRA = """
[retention.categories]
"日常巡查" = 184
[[access.users]]
name = "secretary"
roles = ["clerk", "legal_reviewer"]
clearances = ["个人隐私", "商业秘密", "国家秘密"]
"""


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    home = tmp_path / "home"
    write_agency_config(home, EXTRA)
    services = open_services(load_settings(environ={"EVIDOCK_HOME": str(home)}),
                             clock=StepClock(T0 + timedelta(days=1)))
    try:
        yield services
    finally:
        services.close()


def _item(svc: Services, rid: str):  # type: ignore[no-untyped-def]
    return ItemSource(catalog=svc.catalog).items(recording_ids=[rid])[0]


def _forge(svc: Services, *rows: object) -> None:
    with svc.catalog.transaction() as s:
        for row in rows:
            s.add(row)


def test_forged_rows_that_would_free_footage_are_not_believed(svc: Services) -> None:
    footage(svc, "rec-1", start=T0, offloaded=T0, seconds=60, officer="100001")
    clerk, secretary = svc.gate().by_name("clerk"), svc.gate().by_name("secretary")
    cases = svc.cases()
    cases.create(clerk, number=CASE, case_type="行政处罚", unit="城东中队")
    link = cases.link(clerk, CASE, "rec-1", stage="调查取证", reason="现场检查")
    cases.mark(secretary, "rec-1", mark="作为证据使用", reason="诉讼证据")
    before = _item(svc, "rec-1")
    assert "作为证据使用" in before.marks and before.category is None
    assert [(c.number, c.status) for c in before.cases] == [(CASE, "open")]

    case_id = cases.book.case(CASE).id
    _forge(svc,
           RecordingMark(recording_id="rec-1", kind="mark", value="作为证据使用",
                         action="remove", actor="clerk", reason="x", at=T0),
           RecordingMark(recording_id="rec-1", kind="category", value="日常巡查",
                         actor="clerk", reason="x", at=T0),
           CaseLink(case_id=case_id, recording_id="rec-1", action="unlink",
                    unlinks=link.id, actor="clerk", reason="x", at=T0),
           CaseEvent(case_id=case_id, kind="closed", effective_at=T0, actor="clerk",
                     reason="x", at=T0))
    after = _item(svc, "rec-1")
    assert after.marks == before.marks and after.category is None
    assert [(c.number, c.status) for c in after.cases] == [(CASE, "open")]

    # The same through the desks (each row with its event) is believed.
    cases.categorize(clerk, "rec-1", category="日常巡查", reason="巡查")
    cases.unlink(clerk, link.id, reason="关联错误")
    assert _item(svc, "rec-1").category == "日常巡查"
    assert _item(svc, "rec-1").cases == ()


def test_a_forged_label_downgrade_is_not_believed(svc: Services) -> None:
    secretary = svc.gate().by_name("secretary")
    made = svc.cases().create(secretary, number=SECRET, case_type="行政处罚",
                              unit="城东中队", sensitivity="国家秘密")
    _forge(svc, CaseEvent(case_id=made.id, kind="sensitivity", value="none",
                          effective_at=T0, actor="secretary", reason="x", at=T0))
    assert svc.cases().book.case(SECRET).sensitivity == "国家秘密"
    assert {c.number: c.sensitivity for c in svc.cases().book.cases()}[SECRET] == "国家秘密"
    svc.cases().relabel(secretary, SECRET, sensitivity="个人隐私", reason="降密审批")
    assert svc.cases().book.case(SECRET).sensitivity == "个人隐私"
