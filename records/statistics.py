"""Statistics of enforcement recording (统计分析, 年度报告): the request and the result.

Pure values; :mod:`records.statistics_sql` computes them in the database. Counted per
group of the request's dimensions:

- ``recordings``: camera files, each once per group (a recording linked at two stages
  counts once per stage, once in the total);
- ``hours``: their footage (the longest ``ok`` rendition: end of its last segment, else
  its probed duration); ``unknown_duration``: recordings without one;
- ``late``: recordings offloaded (dock session start, else ingest) more than the upload
  deadline (``coverage.offload_deadline_h``) after the recording ended (camera start +
  duration; camera time unknown: never counted late);
- ``links``: active links of cases to those recordings.

Dimensions: ``unit`` (the unit of the case a recording is linked to; unlinked: none),
``officer`` (the recording's police number), ``stage`` (the link's), ``month`` or
``year`` of the recording (camera start, else ingest time) in the station's zone. A
recording is as secret as the strictest case it is actively linked to: one the reader
may not see is left out of every count and counted once in ``hidden``.

Asked for, ``coverage`` adds the stages of the cases by status (covered, missing, gaps,
不适用) by unit / stage / month / year: :mod:`records.statistics_coverage`, which runs
the pure coverage module per case instead of re-stating its rules in SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Literal, cast, get_args

from integrity.errors import InvalidRequest

Dimension = Literal["unit", "officer", "stage", "month", "year"]
DIMENSIONS: tuple[Dimension, ...] = get_args(Dimension)
PERIODS: tuple[Dimension, ...] = ("month", "year")

# Coverage statuses counted per group (records/statistics_coverage.py counts them).
COVERAGE_METRICS = ("stages", "covered", "missing", "gaps", "not_applicable")


@dataclass(frozen=True, slots=True, kw_only=True)
class StageCounts:
    stages: int = 0  # checklist stages of the cases: the four statuses below
    covered: int = 0
    missing: int = 0
    gaps: int = 0  # stages whose status is gaps (holes over the tolerance)
    not_applicable: int = 0  # marked 不适用

    def __add__(self, other: StageCounts) -> StageCounts:
        return StageCounts(**{k: getattr(self, k) + getattr(other, k) for k in COVERAGE_METRICS})

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in COVERAGE_METRICS}


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageStats:
    by: tuple[Dimension, ...]  # the query's dimensions less officer
    rows: tuple[tuple[tuple[str, ...], StageCounts], ...]
    total: StageCounts
    cases: int
    hidden_cases: int
    hidden_recordings: int

    def to_json(self) -> dict[str, object]:
        return {"by": list(self.by), "cases": self.cases, "hidden_cases": self.hidden_cases,
                "hidden_recordings": self.hidden_recordings, "total": self.total.to_json(),
                "rows": [{**dict(zip(self.by, key, strict=True)), **c.to_json()}
                         for key, c in self.rows]}


#: More periods than this is a request to narrow (a century of months).
MAX_PERIODS = 1200
METRICS = ("recordings", "hours", "unknown_duration", "late", "links")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_YEAR = re.compile(r"^(\d{4})$")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _aware(what: str, when: datetime | None) -> None:
    if when is not None and when.utcoffset() is None:
        raise InvalidRequest(f"{what} must be timezone-aware", **{what: when.isoformat()})


def dimensions(values: list[str] | tuple[str, ...]) -> tuple[Dimension, ...]:
    """``["unit,month"]`` or ``["unit", "month"]`` → the dimensions, in the order given."""
    names = [n.strip() for v in values for n in v.split(",") if n.strip()]
    for n in names:
        if n not in DIMENSIONS:
            raise InvalidRequest(f"cannot group by {n!r}: choose from {', '.join(DIMENSIONS)}",
                                 by=n)
    if len(set(names)) != len(names):
        raise InvalidRequest("a dimension is named twice", by=",".join(names))
    if sum(n in PERIODS for n in names) > 1:
        raise InvalidRequest("group by month or by year, not both", by=",".join(names))
    return tuple(cast(Dimension, n) for n in names)


def parse_bound(text: str | None, zone: tzinfo, *, end: bool) -> datetime | None:
    """``2019``, ``2019-03``, ``2019-03-05`` or an ISO time (no zone: the station's).

    A year, month or day given as ``end`` means its end (``--to 2019`` takes all of
    2019); as a start, its beginning.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    for pattern, kind in ((_YEAR, "year"), (_MONTH, "month")):
        m = pattern.match(text)
        if m:
            first = datetime(int(m.group(1)), int(m.group(2)) if kind == "month" else 1, 1,
                             tzinfo=zone)
            return next_period(first, kind) if end else first
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            first = datetime(day.year, day.month, day.day, tzinfo=zone)
            return first + timedelta(days=1) if end else first
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a year, month (2019-03), date or ISO 8601 time",
                             value=text) from None
    return when if when.utcoffset() is not None else when.replace(tzinfo=zone)


def next_period(first: datetime, kind: str) -> datetime:
    """The start of the month (or year) after the one starting at ``first`` (same zone)."""
    if kind == "year":
        return first.replace(year=first.year + 1)
    return first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Period:
    """One month or year in the station's zone: [start, end), both local midnights."""

    label: str  # "2019-03" or "2019"
    start: datetime
    end: datetime


def periods(kind: str, start: datetime, end: datetime, zone: tzinfo) -> tuple[Period, ...]:
    """The months (or years) of ``zone`` that [start, end) touches, in order."""
    _aware("start", start)
    _aware("end", end)
    local = start.astimezone(zone)
    first = datetime(local.year, 1 if kind == "year" else local.month, 1, tzinfo=zone)
    out: list[Period] = []
    while first < end:
        after = next_period(first, kind)
        label = f"{first.year:04d}" if kind == "year" else f"{first.year:04d}-{first.month:02d}"
        out.append(Period(label=label, start=first, end=after))
        if len(out) > MAX_PERIODS:
            raise InvalidRequest(f"more than {MAX_PERIODS} {kind}s: narrow --from/--to",
                                 start=start.isoformat(), end=end.isoformat())
        first = after
    return tuple(out)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsQuery:
    """What to count: grouped ``by``, recordings in [start, end) (None: unbounded)."""

    by: tuple[Dimension, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    zone: tzinfo
    zone_name: str
    offload_deadline_h: float

    def __post_init__(self) -> None:
        dimensions(self.by)  # the same checks as a request's
        _aware("from", self.start)
        _aware("to", self.end)
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InvalidRequest("--to must be after --from", start=self.start.isoformat(),
                                 end=self.end.isoformat())

    @property
    def period(self) -> Dimension | None:
        return next((d for d in self.by if d in PERIODS), None)


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    recordings: int = 0
    seconds: float = 0.0
    unknown_duration: int = 0
    late: int = 0
    links: int = 0

    def to_json(self) -> dict[str, object]:
        return {"recordings": self.recordings, "hours": round(self.seconds / 3600, 3),
                "unknown_duration": self.unknown_duration, "late": self.late,
                "links": self.links}


@dataclass(frozen=True, slots=True, kw_only=True)
class StatRow:
    """One group: its key (one value per dimension; None: none known) and counts."""

    key: tuple[str | None, ...]
    counts: Counts
    period: Period | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatisticsReport:
    query: StatsQuery
    generated_at: datetime
    rows: tuple[StatRow, ...]
    total: Counts
    hidden: int  # recordings in range the reader may not see: in no count above
    coverage: CoverageStats | None = None  # stage statuses, when asked for

    def row_json(self, row: StatRow) -> dict[str, object]:
        out: dict[str, object] = dict(zip(self.query.by, row.key, strict=True))
        if row.period is not None:
            out["period_start"] = _iso(row.period.start)
            out["period_end"] = _iso(row.period.end)
        return {**out, **row.counts.to_json()}

    def to_json(self) -> dict[str, object]:
        q = self.query
        def local(when: datetime | None) -> str | None:
            return None if when is None else when.astimezone(q.zone).isoformat()

        return {"generated_at": local(self.generated_at), "zone": q.zone_name,
                "by": list(q.by), "from": local(q.start), "to": local(q.end),
                "offload_deadline_h": q.offload_deadline_h, "hidden": self.hidden,
                "total": self.total.to_json(), "rows": [self.row_json(r) for r in self.rows],
                **({} if self.coverage is None else {"coverage": self.coverage.to_json()})}


__all__ = ["COVERAGE_METRICS", "DIMENSIONS", "MAX_PERIODS", "METRICS", "PERIODS", "Counts",
           "CoverageStats", "Dimension", "Period", "StageCounts",
           "StatRow", "StatisticsReport", "StatsQuery", "dimensions", "next_period",
           "parse_bound", "periods"]
