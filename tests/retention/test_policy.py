"""The pure retention planner and its settings: every rule, holds first, safe defaults."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from config.retention import DEFAULT_CASE_TYPES, LEGAL_FLOOR_DAYS, RetentionSettings
from retention import policy
from retention.policy import (
    CaseRef,
    Decision,
    HoldRef,
    Item,
    RetentionInvariantError,
    plan,
    summarize,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
CST = timezone(timedelta(hours=8))

RULES = RetentionSettings(
    categories={"日常巡查": 184, "交通": 365, "涉密": "permanent"},
    case_types={**DEFAULT_CASE_TYPES, "档案": "permanent"},
)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def item(
    rid: str = "R1",
    *,
    ingested: datetime = T0,
    camera: datetime | None = None,
    category: str | None = None,
    marks: tuple[str, ...] = (),
    cases: tuple[CaseRef, ...] = (),
    officer: str | None = "O1",
) -> Item:
    return Item(rid, officer, ingested, camera, category, frozenset(marks), cases)


def case(
    cid: str = "C1",
    case_type: str = "行政检查",
    *,
    closed: datetime | None = None,
    status: str = "closed",
) -> CaseRef:
    return CaseRef(cid, f"公({cid})号", case_type, status, closed)  # type: ignore[arg-type]


def hold(scope: str, target: str, hid: str = "H1") -> HoldRef:
    return HoldRef(hid, scope, target)  # type: ignore[arg-type]


def one(it: Item, now: datetime, holds: tuple[HoldRef, ...] = (), rules: Any = RULES) -> Decision:
    (decision,) = plan([it], rules=rules, holds=holds, now=now)
    return decision


# (item, holds, now, action, rule, retain_until)
CASES = [
    # safe defaults: unclassified footage, base period 184 days
    pytest.param(item(), (), day(183), "keep", "base", day(184), id="base-183-days-keep"),
    pytest.param(item(), (), day(184) - timedelta(seconds=1), "keep", "base", day(184),
                 id="base-one-second-before-boundary-keep"),
    pytest.param(item(), (), day(184), "delete", "base", day(184), id="base-exact-boundary-delete"),
    pytest.param(item(), (), day(185), "delete", "base", day(184), id="base-185-days-delete"),
    # camera clock wrong
    pytest.param(item(camera=day(-1000)), (), day(100), "keep", "base", day(184),
                 id="camera-far-past-not-due"),
    pytest.param(item(camera=day(-1000)), (), day(184), "delete", "base", day(184),
                 id="camera-far-past-counts-from-ingest"),
    pytest.param(item(camera=day(400)), (), day(500), "keep", "base", day(584),
                 id="camera-far-future-makes-later"),
    pytest.param(item(camera=day(400)), (), day(584), "delete", "base", day(584),
                 id="camera-far-future-due-from-camera-start"),
    pytest.param(item(ingested=day(0).astimezone(CST), camera=day(10).astimezone(CST)), (),
                 day(190), "keep", "base", day(194), id="other-timezone-same-instants"),
    # categories
    pytest.param(item(category="交通"), (), day(300), "keep", "category", day(365),
                 id="category-days-keep"),
    pytest.param(item(category="交通"), (), day(365), "delete", "category", day(365),
                 id="category-days-delete"),
    pytest.param(item(category="日常巡查"), (), day(200), "delete", "category", day(184),
                 id="category-legal-minimum-delete"),
    pytest.param(item(category="无此类别"), (), day(9000), "keep", "category_unknown", None,
                 id="category-unknown-keep"),
    pytest.param(item(category="涉密"), (), day(9000), "keep", "category_permanent", None,
                 id="category-permanent-keep"),
    # permanent marks
    pytest.param(item(marks=("作为证据使用",)), (), day(9000), "keep", "permanent_mark", None,
                 id="mark-evidence-keep"),
    pytest.param(item(marks=("其他", "重大案件")), (), day(9000), "keep", "permanent_mark", None,
                 id="mark-major-case-among-others-keep"),
    pytest.param(item(marks=("其他",)), (), day(200), "delete", "base", day(184),
                 id="mark-unconfigured-ignored"),
    # holds: every scope, and a hold wins over a due delete and over everything
    pytest.param(item(), (hold("recording", "R1"),), day(9000), "keep", "hold", None,
                 id="hold-recording-beats-due-delete"),
    pytest.param(item(), (hold("officer", "O1"),), day(9000), "keep", "hold", None,
                 id="hold-officer-beats-due-delete"),
    pytest.param(item(cases=(case(closed=day(0)),)), (hold("case", "C1"),), day(9000), "keep",
                 "hold", None, id="hold-case-beats-due-delete"),
    pytest.param(item(marks=("作为证据使用",), category="无此类别",
                      cases=(case(status="open"),)),
                 (hold("recording", "R1"),), day(9000), "keep", "hold", None,
                 id="hold-beats-everything"),
    pytest.param(item(), (hold("recording", "R2"), hold("officer", "O2"), hold("case", "C1")),
                 day(200), "delete", "base", day(184), id="holds-on-others-no-effect"),
    pytest.param(item(officer=None), (hold("officer", "O1"),), day(200), "delete", "base",
                 day(184), id="no-officer-no-officer-hold"),
    pytest.param(item(marks=("作为证据使用",)), (hold("recording", "R1"),), day(9000), "keep",
                 "hold", None, id="hold-named-before-mark"),
    # cases
    pytest.param(item(cases=(case(status="open"),)), (), day(9000), "keep", "case_open", None,
                 id="case-open-keep"),
    pytest.param(item(cases=(case(closed=day(10)), case("C2", status="open"))), (), day(9000),
                 "keep", "case_open", None, id="two-cases-one-open-keep"),
    pytest.param(item(cases=(case(closed=day(10)),)), (), day(500), "keep", "case_closed",
                 day(1105), id="case-closed-period-running-keep-until"),
    pytest.param(item(cases=(case(closed=day(10)),)), (), day(1105), "delete", "case_closed",
                 day(1105), id="case-closed-period-elapsed-delete"),
    pytest.param(item(cases=(case(closed=day(-2000)),)), (), day(100), "keep", "base", day(184),
                 id="case-closed-long-ago-base-still-applies"),
    pytest.param(item(cases=(case(closed=day(-2000)),)), (), day(184), "delete", "base",
                 day(184), id="case-closed-long-ago-base-then-delete"),
    pytest.param(item(category="交通", cases=(case(closed=day(-1000)),)), (), day(200), "keep",
                 "category", day(365), id="case-closed-long-ago-category-still-applies"),
    pytest.param(item(cases=(case(closed=day(10)), case("C2", "行政处罚", closed=day(20)))), (),
                 day(2000), "keep", "case_closed", day(3670), id="two-closed-cases-longest-wins"),
    pytest.param(item(cases=(case(closed=day(10)), case("C2", "行政处罚", closed=day(20)))), (),
                 day(3670), "delete", "case_closed", day(3670), id="two-closed-cases-delete"),
    pytest.param(item(cases=(case(case_type="刑事", closed=day(10)),)), (), day(9000), "keep",
                 "case_type_unknown", None, id="case-type-unknown-with-date-keep"),
    pytest.param(item(cases=(case(case_type="档案", closed=day(10)),)), (), day(9000), "keep",
                 "case_type_permanent", None, id="case-type-permanent-keep"),
    pytest.param(item(cases=(case(closed=None),)), (), day(9000), "keep",
                 "case_closed_at_missing", None, id="case-closed-without-date-keep"),
    pytest.param(item(category="涉密", cases=(case(closed=day(0)),)), (), day(9000), "keep",
                 "category_permanent", None, id="case-elapsed-category-permanent-keep"),
    pytest.param(item(category="无此类别", cases=(case(closed=day(0)),)), (), day(9000), "keep",
                 "category_unknown", None, id="case-elapsed-category-unknown-keep"),
    pytest.param(item(category="交通", cases=(case(status="open"),)), (), day(9000), "keep",
                 "case_open", None, id="case-open-beats-category"),
    pytest.param(item(cases=(case(closed=day(0)), case("C2", "刑事", closed=day(0)))), (),
                 day(9000), "keep", "case_type_unknown", None,
                 id="one-known-one-unknown-type-keep"),
]


@pytest.mark.parametrize(("it", "holds", "now", "action", "rule", "until"), CASES)
def test_rules(
    *,
    it: Item,
    holds: tuple[HoldRef, ...],
    now: datetime,
    action: str,
    rule: str,
    until: datetime | None,
) -> None:
    decision = one(it, now, holds)
    assert (decision.action, decision.rule, decision.retain_until) == (action, rule, until)
    assert decision.recording_id == it.recording_id
    assert decision.rule in policy.RULES
    assert decision.reason


@pytest.mark.parametrize(
    ("it", "holds", "now", "needle"),
    [
        pytest.param(item(), (hold("recording", "R1", "H-77"),), day(1), "H-77", id="hold-id"),
        pytest.param(item(cases=(case(),)), (hold("case", "C1", "H-9"),), day(1), "公(C1)号",
                     id="hold-case-number"),
        pytest.param(item(marks=("妨碍执法",)), (), day(1), "妨碍执法", id="mark"),
        pytest.param(item(cases=(case("C7", status="open"),)), (), day(1), "公(C7)号",
                     id="open-case-number"),
        pytest.param(item(cases=(case(closed=day(10)),)), (), day(1), "1095 days",
                     id="case-period"),
        pytest.param(item(category="交通"), (), day(1), "365 days", id="category-period"),
        pytest.param(item(), (), day(1), "184 days", id="base-period"),
        pytest.param(item(), (), day(200), "ended 2024-07-03", id="delete-date"),
    ],
)
def test_reasons_name_the_data(
    it: Item, holds: tuple[HoldRef, ...], now: datetime, needle: str
) -> None:
    assert needle in one(it, now, holds).reason


def test_one_decision_per_item_in_input_order() -> None:
    items = [item("R3"), item("R1", marks=("重大案件",)), item("R2", category="交通")]
    decisions = plan(items, rules=RULES, holds=[], now=day(200))
    assert [d.recording_id for d in decisions] == ["R3", "R1", "R2"]
    assert [d.action for d in decisions] == ["delete", "keep", "keep"]


def test_summarize_counts_actions_and_rules() -> None:
    items = [item("R1"), item("R2"), item("R3", category="交通"), item("R4")]
    decisions = plan(items, rules=RULES, holds=[hold("recording", "R4")], now=day(200))
    assert summarize(decisions) == {
        "delete": 2, "delete:base": 2, "keep": 2, "keep:category": 1, "keep:hold": 1,
    }
    assert summarize([]) == {"delete": 0, "keep": 0}


def test_legal_minimum_from_settings_extends_periods() -> None:
    rules = RetentionSettings(legal_minimum_days=365, base_days=365, case_types={})
    assert one(item(), day(300), rules=rules).action == "keep"
    assert one(item(), day(365), rules=rules).retain_until == day(365)


def test_invariant_violation_raises_instead_of_deleting(monkeypatch: pytest.MonkeyPatch) -> None:
    def too_early(it: Item, rules: Any, start: datetime, minimum: int) -> Any:
        return policy._Verdict("base", "bug", start + timedelta(days=10))

    monkeypatch.setattr(policy, "_routine_verdict", too_early)
    with pytest.raises(RetentionInvariantError) as err:
        one(item(), day(20))
    assert err.value.code == "E_RETENTION_INVARIANT"
    assert err.value.details["recording_id"] == "R1"


NAIVE = datetime(2024, 1, 1)


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: item(ingested=NAIVE), id="ingested_at"),
        pytest.param(lambda: item(camera=NAIVE), id="camera_start"),
        pytest.param(lambda: case(closed=NAIVE), id="closed_at"),
        pytest.param(lambda: plan([item()], rules=RULES, holds=[], now=NAIVE), id="now"),
    ],
)
def test_naive_datetimes_are_rejected(build: Any) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: plan([item(), item()], rules=RULES, holds=[], now=T0),
                     id="duplicate-recording"),
        pytest.param(lambda: hold("station", "X"), id="hold-scope"),
        pytest.param(lambda: case(status="Closed"), id="case-status"),
    ],
)
def test_bad_inputs_are_rejected(build: Any) -> None:
    with pytest.raises(ValueError):
        build()


# --- settings -----------------------------------------------------------------------------


def test_settings_defaults_are_lawful() -> None:
    s = RetentionSettings()
    assert s.legal_minimum_days == s.base_days == LEGAL_FLOOR_DAYS == 184
    assert s.case_types["行政处罚"] == 3650
    assert "作为证据使用" in s.permanent_marks
    assert (s.grace_days, s.require_second_approval, s.categories) == (7, True, {})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"legal_minimum_days": 100}, "legal floor is 184", id="legal-min-below-floor"),
        pytest.param({"legal_minimum_days": 183}, "legal_minimum_days", id="legal-min-183"),
        pytest.param({"base_days": 150}, "base_days", id="base-below-legal-min"),
        pytest.param({"legal_minimum_days": 400}, "base_days", id="base-below-raised-min"),
        pytest.param({"categories": {"交通": 100}}, "categories['交通'] = 100",
                     id="category-below-legal-min"),
        pytest.param({"categories": {"交通": "forever"}}, "categories", id="category-bad-word"),
        pytest.param({"categories": {"": 365}}, "categories", id="category-empty-name"),
        pytest.param({"case_types": {"行政检查": 183}}, "case_types['行政检查'] = 183",
                     id="case-type-below-legal-min"),
        pytest.param({"case_types": {"行政检查": 10**9}}, "case_types", id="case-type-huge"),
        pytest.param({"legal_minimum_days": 1200, "base_days": 1200}, "case_types['行政检查']",
                     id="default-case-types-below-raised-min"),
        pytest.param({"permanent_marks": (" 重大案件",)}, "permanent_marks", id="mark-padded"),
        pytest.param({"grace_days": -1}, "grace_days", id="grace-negative"),
        pytest.param({"grace_days": 366}, "grace_days", id="grace-too-long"),
        pytest.param({"delete_everything": True}, "delete_everything", id="extra-key"),
    ],
)
def test_settings_reject(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as err:
        RetentionSettings(**kwargs)
    assert message in str(err.value)


def test_settings_accept_permanent_and_are_frozen() -> None:
    s = RetentionSettings(categories={"涉密": "permanent", "交通": 184}, base_days=365)
    assert s.categories == {"涉密": "permanent", "交通": 184}
    with pytest.raises(ValidationError):
        s.base_days = 184


# --- property: no delete before the legal minimum, before now, or of anything kept ---------

CATEGORIES = st.sampled_from([None, "日常巡查", "交通", "涉密", "无此类别"])
CASE_TYPES = st.sampled_from(["行政处罚", "行政检查", "档案", "刑事"])
WHEN = st.datetimes(datetime(2015, 1, 1), datetime(2035, 1, 1), timezones=st.just(UTC))
OFFSET = st.timedeltas(timedelta(days=-4000), timedelta(days=4000))


@st.composite
def cases(draw: st.DrawFn, n: int) -> CaseRef:
    status = draw(st.sampled_from(["open", "closed"]))
    closed = draw(st.none() | WHEN)
    return case(f"C{n}", draw(CASE_TYPES), closed=closed, status=status)


@st.composite
def items(draw: st.DrawFn, n: int) -> Item:
    ingested = draw(WHEN)
    offset = draw(st.none() | OFFSET)
    n_cases = draw(st.integers(0, 3))
    return item(
        f"R{n}",
        ingested=ingested,
        camera=None if offset is None else ingested + offset,
        category=draw(CATEGORIES),
        marks=tuple(draw(st.sets(st.sampled_from(["作为证据使用", "其他"]), max_size=2))),
        cases=tuple(draw(cases(n * 10 + k)) for k in range(n_cases)),
        officer=draw(st.sampled_from([None, "O1", "O2"])),
    )


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Item], list[HoldRef], RetentionSettings, datetime]:
    count = draw(st.integers(1, 8))
    its = [draw(items(n)) for n in range(count)]
    holds = draw(st.lists(st.builds(
        HoldRef, st.text(min_size=1, max_size=3), st.just("recording"),
        st.sampled_from([f"R{n}" for n in range(count)]),
    ) | st.builds(HoldRef, st.just("H"), st.just("officer"), st.just("O2"))
      | st.builds(HoldRef, st.just("H"), st.just("case"), st.just("C10")), max_size=3))
    minimum = draw(st.integers(LEGAL_FLOOR_DAYS, 800))
    days = st.integers(minimum, 4000)
    rules = RetentionSettings(
        legal_minimum_days=minimum, base_days=draw(days),
        categories={"日常巡查": draw(days), "交通": draw(days), "涉密": "permanent"},
        case_types={"行政处罚": draw(days), "行政检查": draw(days), "档案": "permanent"},
    )
    return its, holds, rules, draw(WHEN) + timedelta(days=draw(st.integers(0, 6000)))


def held(it: Item, holds: list[HoldRef]) -> bool:
    targets = {("recording", it.recording_id), ("officer", it.officer_id)}
    targets |= {("case", c.case_id) for c in it.cases}
    return any((h.scope, h.target) in targets for h in holds)


@settings(max_examples=400, deadline=None)
@given(worlds())
def test_property_no_unlawful_delete(
    world: tuple[list[Item], list[HoldRef], RetentionSettings, datetime],
) -> None:
    its, holds, rules, now = world
    decisions = plan(its, rules=rules, holds=holds, now=now)
    assert [d.recording_id for d in decisions] == [it.recording_id for it in its]
    later = plan(its, rules=rules, holds=holds, now=now + timedelta(days=30))
    for it, decision, after in zip(its, decisions, later, strict=True):
        start = max(it.ingested_at, it.camera_start or it.ingested_at)
        if decision.action == "keep":
            assert decision.retain_until is None or decision.retain_until > now
            continue
        assert decision.retain_until is not None
        assert decision.retain_until <= now
        assert decision.retain_until >= start + timedelta(days=rules.legal_minimum_days)
        assert decision.retain_until >= it.ingested_at + timedelta(days=rules.legal_minimum_days)
        assert not held(it, holds)
        assert "作为证据使用" not in it.marks
        assert all(c.status == "closed" and c.closed_at is not None for c in it.cases)
        assert all(c.case_type in ("行政处罚", "行政检查") for c in it.cases)
        assert it.category in (None, "日常巡查", "交通")
        for c in it.cases:
            period = rules.case_types[c.case_type]
            assert isinstance(period, int) and c.closed_at is not None
            assert decision.retain_until >= c.closed_at + timedelta(days=period)
        assert (after.action, after.retain_until) == ("delete", decision.retain_until)
