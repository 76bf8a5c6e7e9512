"""The retention planner: pure, decides keep or delete for each recording.

No database, clock or I/O: the caller hands in the recordings (``Item``), the holds in
force, the settings and ``now``. Evaluation order, first match wins for indefinite keeps:

1. any hold on the recording, its officer or one of its cases → keep ("hold");
2. a permanent mark → keep ("permanent_mark");
3. linked cases: one open, closed without a date, of an unknown or permanent type → keep;
   otherwise the latest ``closed_at + case type days``;
4. the routine period: the category's (unknown or "permanent" category → keep), or the
   base period for unclassified footage.

The longest keep wins: a case period never shortens the routine period. A period starts
at the LATER of ingest and camera start, so a wrong camera clock can never make footage
look older than it is. Every delete is checked against the legal minimum before it is
returned; a violation raises instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from config.retention import LEGAL_FLOOR_DAYS, RetentionSettings
from integrity.errors import RetentionInvariantError  # re-exported: callers catch it here

Action = Literal["keep", "delete"]
HoldScope = Literal["case", "recording", "officer"]

RULES: tuple[str, ...] = (
    "hold",
    "permanent_mark",
    "case_open",
    "case_closed_at_missing",
    "case_type_unknown",
    "case_type_permanent",
    "case_closed",
    "category_unknown",
    "category_permanent",
    "category",
    "base",
)


def _aware(name: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


@dataclass(frozen=True, slots=True)
class CaseRef:
    case_id: str
    number: str
    case_type: str
    status: Literal["open", "closed"]
    closed_at: datetime | None

    def __post_init__(self) -> None:
        if self.status not in ("open", "closed"):
            raise ValueError(f"case {self.number}: status {self.status!r} is not open/closed")
        _aware(f"case {self.number} closed_at", self.closed_at)


@dataclass(frozen=True, slots=True)
class Item:
    recording_id: str
    officer_id: str | None
    ingested_at: datetime
    camera_start: datetime | None
    category: str | None  # None: unclassified routine footage (base period)
    marks: frozenset[str]
    cases: tuple[CaseRef, ...]

    def __post_init__(self) -> None:
        _aware(f"recording {self.recording_id} ingested_at", self.ingested_at)
        _aware(f"recording {self.recording_id} camera_start", self.camera_start)


@dataclass(frozen=True, slots=True)
class HoldRef:
    hold_id: str
    scope: HoldScope
    target: str  # case_id, recording_id or officer_id

    def __post_init__(self) -> None:
        if self.scope not in ("case", "recording", "officer"):
            raise ValueError(f"hold {self.hold_id}: unknown scope {self.scope!r}")


@dataclass(frozen=True, slots=True)
class Decision:
    recording_id: str
    action: Action
    rule: str
    reason: str
    retain_until: datetime | None  # None: indefinite (hold, permanent, open case, unknown)


@dataclass(frozen=True, slots=True)
class _Verdict:
    rule: str
    reason: str
    until: datetime | None  # None: indefinite


def _day(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _index_holds(holds: Iterable[HoldRef]) -> Mapping[tuple[str, str], tuple[str, ...]]:
    index: dict[tuple[str, str], list[str]] = {}
    for hold in holds:
        index.setdefault((hold.scope, hold.target), []).append(hold.hold_id)
    return {key: tuple(sorted(ids)) for key, ids in index.items()}


def _hold_verdict(
    item: Item, holds: Mapping[tuple[str, str], tuple[str, ...]]
) -> _Verdict | None:
    found: list[str] = []
    found += [f"{h} (recording)" for h in holds.get(("recording", item.recording_id), ())]
    if item.officer_id is not None:
        officer = item.officer_id
        found += [f"{h} (officer {officer})" for h in holds.get(("officer", officer), ())]
    for case in item.cases:
        found += [f"{h} (case {case.number})" for h in holds.get(("case", case.case_id), ())]
    if not found:
        return None
    return _Verdict("hold", f"under hold {', '.join(found)}", None)


def _mark_verdict(item: Item, rules: RetentionSettings) -> _Verdict | None:
    marks = sorted(item.marks.intersection(rules.permanent_marks))
    if not marks:
        return None
    names = ", ".join(repr(m) for m in marks)
    return _Verdict("permanent_mark", f"marked {names}, which is kept permanently", None)


def _case_verdict(case: CaseRef, rules: RetentionSettings, minimum: int) -> _Verdict:
    label = f"case {case.number} ({case.case_type})"
    if case.status == "open":
        return _Verdict("case_open", f"linked {label} is still open", None)
    if case.closed_at is None:
        return _Verdict("case_closed_at_missing", f"linked {label} is closed without a date", None)
    period = rules.case_types.get(case.case_type)
    if period is None:
        return _Verdict("case_type_unknown", f"linked {label} has an unconfigured type", None)
    if period == "permanent":
        return _Verdict("case_type_permanent", f"linked {label} is of a permanent type", None)
    days = max(period, minimum)
    until = case.closed_at.astimezone(UTC) + timedelta(days=days)
    reason = f"linked {label} closed {_day(case.closed_at)}, kept {days} days after closing"
    return _Verdict("case_closed", reason, until)


def _cases_verdict(item: Item, rules: RetentionSettings, minimum: int) -> _Verdict | None:
    verdicts = [_case_verdict(case, rules, minimum) for case in item.cases]
    if not verdicts:
        return None
    indefinite = [v for v in verdicts if v.until is None]
    if indefinite:
        return min(indefinite, key=lambda v: RULES.index(v.rule))
    return max(verdicts, key=_until_key)


def _routine_verdict(
    item: Item, rules: RetentionSettings, start: datetime, minimum: int
) -> _Verdict:
    if item.category is None:
        days = max(rules.base_days, minimum)
        rule, what = "base", "unclassified footage"
    else:
        period = rules.categories.get(item.category)
        what = f"category {item.category!r}"
        if period is None:
            return _Verdict("category_unknown", f"{what} has no configured period", None)
        if period == "permanent":
            return _Verdict("category_permanent", f"{what} is kept permanently", None)
        days, rule = max(period, minimum), "category"
    reason = f"{what} is kept {days} days from {_day(start)}"
    return _Verdict(rule, reason, start + timedelta(days=days))


def _until_key(verdict: _Verdict) -> datetime:
    return datetime.max.replace(tzinfo=UTC) if verdict.until is None else verdict.until


def _start(item: Item) -> datetime:
    """Later of ingest and camera start: a wrong camera clock never ages footage."""
    start = item.ingested_at.astimezone(UTC)
    if item.camera_start is not None:
        start = max(start, item.camera_start.astimezone(UTC))
    return start


def _decide(
    item: Item,
    rules: RetentionSettings,
    holds: Mapping[tuple[str, str], tuple[str, ...]],
    now: datetime,
) -> Decision:
    early = _hold_verdict(item, holds) or _mark_verdict(item, rules)
    if early is not None:
        return Decision(item.recording_id, "keep", early.rule, early.reason, None)
    minimum = max(rules.legal_minimum_days, LEGAL_FLOOR_DAYS)
    start = _start(item)
    routine = _routine_verdict(item, rules, start, minimum)
    case = _cases_verdict(item, rules, minimum)
    # longest keep wins; on a tie the case (the more specific reason) is named
    chosen = routine if case is None or _until_key(routine) > _until_key(case) else case
    if chosen.until is None:
        return Decision(item.recording_id, "keep", chosen.rule, chosen.reason, None)
    if chosen.until > now:
        reason = f"{chosen.reason}; kept until {_day(chosen.until)}"
        return Decision(item.recording_id, "keep", chosen.rule, reason, chosen.until)
    _check_delete(item, chosen.until, start, minimum, now)
    reason = f"{chosen.reason}; period ended {_day(chosen.until)}"
    return Decision(item.recording_id, "delete", chosen.rule, reason, chosen.until)


def _check_delete(
    item: Item, until: datetime, start: datetime, minimum: int, now: datetime
) -> None:
    earliest = start + timedelta(days=minimum)
    if until > now or until < earliest:
        raise RetentionInvariantError(
            f"refusing to delete {item.recording_id}: period ends {_day(until)}, "
            f"legal minimum ends {_day(earliest)}, now {_day(now)}",
            recording_id=item.recording_id,
            retain_until=until,
            legal_minimum_until=earliest,
            now=now,
        )


def _unique(items: Iterable[Item]) -> Iterator[Item]:
    seen: set[str] = set()
    for item in items:
        if item.recording_id in seen:
            raise ValueError(f"recording {item.recording_id} given twice")
        seen.add(item.recording_id)
        yield item


def plan(
    items: Iterable[Item],
    *,
    rules: RetentionSettings,
    holds: Iterable[HoldRef],
    now: datetime,
) -> tuple[Decision, ...]:
    """One decision per item, in input order. ``now`` must be timezone-aware."""
    _aware("now", now)
    index = _index_holds(holds)
    return tuple(_decide(item, rules, index, now) for item in _unique(items))


def summarize(decisions: Iterable[Decision]) -> dict[str, int]:
    """Counts per action ("keep", "delete") and per "action:rule", sorted by key."""
    counts: Counter[str] = Counter({"keep": 0, "delete": 0})
    for decision in decisions:
        counts[decision.action] += 1
        counts[f"{decision.action}:{decision.rule}"] += 1
    return dict(sorted(counts.items()))
