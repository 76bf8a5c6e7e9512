"""Statistics computed by the database (GROUP BY), on SQLite and PostgreSQL alike.

One pass over the visible recordings in range, read from the facts the catalog keeps
per recording (``recordingstat``, records/statistics_facts.py: officer, when, footage
seconds, offload times, active links) as one scan, from which every report is read.
Officer, month and year put each recording in one group: the groups are that pass
grouped, and the total is their sum. Unit and stage come from the links: the linked
recordings are counted over DISTINCT (group, recording) pairs, the unlinked ones go to
the group of no unit / stage, and the total rides in the same statement. Recordings
linked to a case the reader may not see (unit, or a label beyond their clearance; the
case's newest label) are excluded inside the query and counted once as hidden.

Periods are compared as datetimes against the zone's month or year boundaries computed
here (a CASE over the bounds), so the database needs no time zone table and a month
is the station's month on both dialects. Seconds since 1970 (for late offloads) were
computed by the database when the facts were kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, type_coerce, union_all
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import CTE, Select, Subquery

from archive.catalog import Catalog
from archive.catalog.types import UTCDateTime, table_of
from config.access import SENSITIVITIES, CoverageSettings
from integrity.errors import InvalidRequest
from records.models import Case, CaseEvent, CaseLink
from records.permissions import Actor, Gate, P
from records.statistics import (
    PERIODS,
    Counts,
    Period,
    StatisticsReport,
    StatRow,
    StatsQuery,
    periods,
)
from records.statistics_facts import RecordingStat

_STAT = table_of(RecordingStat)
_CASE, _EVENT, _LINK = table_of(Case), table_of(CaseEvent), table_of(CaseLink)


# ------------------------------------------------------------------ building blocks


def active_links(name: str) -> Subquery:
    """Link rows no unlink row names."""
    unlink = _LINK.alias(f"{name}_unlink")
    # Not a correlated NOT EXISTS: ``unlinks`` has no index, and the set is small.
    removed = (select(unlink.c.unlinks)
               .where(unlink.c.action == "unlink", unlink.c.unlinks.is_not(None))
               .correlate(None))
    return (select(_LINK.c.id, _LINK.c.case_id, _LINK.c.recording_id, _LINK.c.stage)
            .where(_LINK.c.action == "link", _LINK.c.id.not_in(removed)).subquery(name))


def hidden_cases(actor: Actor) -> Select[Any]:
    """Ids of the cases ``actor`` may not see: another unit, or a label (the newest one)
    beyond their clearance."""
    last = (select(_EVENT.c.case_id, func.max(_EVENT.c.id).label("last_id"))
            .where(_EVENT.c.kind == "sensitivity").group_by(_EVENT.c.case_id)
            .subquery("last_label"))
    relabel = _EVENT.alias("relabel")
    label = func.coalesce(relabel.c.value, _CASE.c.sensitivity)
    cleared = [x for x in SENSITIVITIES if x == "none" or x in actor.clearances]
    unseen: list[ColumnElement[bool]] = [label.not_in(cleared)]
    if actor.units:
        unseen.append(_CASE.c.unit.not_in(sorted(actor.units)))
    return (select(_CASE.c.id)
            .select_from(_CASE.outerjoin(last, last.c.case_id == _CASE.c.id)
                         .outerjoin(relabel, relabel.c.id == last.c.last_id))
            .where(or_(*unseen)).correlate(None))


def hidden_recordings(actor: Actor) -> Select[Any]:
    links = active_links("hidden_link")
    return (select(links.c.recording_id).where(links.c.case_id.in_(hidden_cases(actor)))
            .correlate(None))


def in_range(query: StatsQuery) -> list[ColumnElement[bool]]:
    when = _STAT.c.recorded_at
    out: list[ColumnElement[bool]] = []
    if query.start is not None:
        out.append(when >= query.start)
    if query.end is not None:
        out.append(when < query.end)
    return out


def bucket(spans: Sequence[Period]) -> ColumnElement[Any]:
    """The label of the period a recording falls in (rows are already in range)."""
    if not spans:
        return type_coerce(None, UTCDateTime())
    return _search(_STAT.c.recorded_at, spans)


def _search(when: ColumnElement[datetime], spans: Sequence[Period]) -> ColumnElement[Any]:
    """The first span ending after ``when``, as nested CASEs halving the spans: ~log2(n)
    comparisons a row where one CASE of n branches took n/2 (24 months, 10⁶ rows)."""
    if len(spans) == 1:
        return case((when < spans[0].end, spans[0].label))
    mid = len(spans) // 2
    return case((when < spans[mid - 1].end, _search(when, spans[:mid])),
                else_=_search(when, spans[mid:]))


def visible(query: StatsQuery, actor: Actor, spans: Sequence[Period]) -> CTE:
    """One row per visible recording in range: officer, period, seconds, late flag and
    active links, from its kept facts (records/statistics_facts.py): one scan."""
    st = _STAT
    ended = st.c.start_s + func.coalesce(st.c.seconds, 0.0)
    late = case((and_(st.c.start_s.is_not(None),
                      st.c.offloaded_s - ended > query.offload_deadline_h * 3600), 1),
                else_=0)
    return (select(st.c.recording_id.label("id"), st.c.officer_id.label("officer"),
                   bucket(spans).label("period"), st.c.seconds, late.label("late"),
                   st.c.links)
            .where(st.c.recording_id.not_in(hidden_recordings(actor)), *in_range(query))
            .cte("visible_recording"))


def _sums(keys: Sequence[ColumnElement[Any]], table: Any, *, recordings: ColumnElement[Any],
          links: ColumnElement[Any]) -> Select[Any]:
    unknown = case((table.c.seconds.is_(None), 1), else_=0)
    return select(*keys, recordings.label("recordings"),
                  func.sum(table.c.seconds).label("seconds"),
                  func.sum(unknown).label("unknown"), func.sum(table.c.late).label("late"),
                  links.label("links"))


def _keyed(query: StatsQuery, table: Any, **fixed: ColumnElement[Any] | None) -> list[Any]:
    """The query's dimensions as columns of ``table`` (``fixed``: given instead, or left
    out when None: PostgreSQL refuses to GROUP BY a constant)."""
    out = []
    for d in query.by:
        name = "period" if d in PERIODS else d
        if name not in fixed:
            out.append(table.c[name].label(name))
        elif (given := fixed[name]) is not None:
            out.append(given.label(name))
    return out


def by_recording(query: StatsQuery, v: CTE) -> Select[Any]:
    """No dimension, or ones that put each recording in one group (officer, month,
    year): one pass over the visible recordings."""
    keys = _keyed(query, v)
    return (_sums(keys, v, recordings=func.count(), links=func.sum(v.c.links))
            .group_by(*keys))


def by_link(query: StatsQuery, v: CTE) -> Select[Any]:
    """Dimensions of the links (unit, stage): a recording counts once per group it is
    linked into. Linked recordings are grouped by (group, recording) first; unlinked
    ones (most) go straight to the group of no unit / stage. The last column says
    which row is the total (every visible recording once), counted in the same pass."""
    links = active_links("active_link")
    linked = _CASE.alias("linked_case")
    facts = (select(v.c.id, v.c.officer, v.c.period, v.c.seconds, v.c.late,
                    linked.c.unit, links.c.stage)
             .select_from(v.join(links, links.c.recording_id == v.c.id)
                          .join(linked, linked.c.id == links.c.case_id))
             .where(v.c.links > 0).subquery("fact"))  # no link lookup for the unlinked
    inner = _keyed(query, facts)
    pairs = (select(*inner, facts.c.id, facts.c.seconds, facts.c.late,
                    func.count().label("links"))
             .group_by(*inner, facts.c.id, facts.c.seconds, facts.c.late).subquery("pair"))
    keys = _keyed(query, pairs)
    none = type_coerce(None, linked.c.unit.type)
    branches = [
        _sums(keys, pairs, recordings=func.count(), links=func.sum(pairs.c.links))
        .add_columns(literal(0).label("is_total")).group_by(*keys),
        _sums(_keyed(query, v, unit=none, stage=none), v, recordings=func.count(),
              links=literal(0)).add_columns(literal(0).label("is_total"))
        .where(v.c.links == 0).group_by(*_keyed(query, v, unit=None, stage=None)),
        _sums([none.label(k.name) for k in keys], v, recordings=func.count(),
              links=func.sum(v.c.links)).add_columns(literal(1).label("is_total"))]
    both = union_all(*branches).subquery("branch")
    out = [both.c[k.name] for k in keys]
    return (select(*out, func.sum(both.c.recordings), func.sum(both.c.seconds),
                   func.sum(both.c.unknown), func.sum(both.c.late), func.sum(both.c.links),
                   both.c.is_total)
            .group_by(*out, both.c.is_total))


def hidden_count(query: StatsQuery, actor: Actor) -> Select[Any]:
    return (select(func.count()).select_from(_STAT)
            .where(_STAT.c.recording_id.in_(hidden_recordings(actor)), *in_range(query)))


def extent(query: StatsQuery, actor: Actor | None) -> Select[datetime, datetime]:
    """The first and last time of the recordings in range (``actor``: only those they
    may see; None: all of them)."""
    when = _STAT.c.recorded_at
    hidden = [] if actor is None else [_STAT.c.recording_id.not_in(hidden_recordings(actor))]
    return (select(type_coerce(func.min(when), UTCDateTime()),
                   type_coerce(func.max(when), UTCDateTime()))
            .where(*hidden, *in_range(query)))


# ------------------------------------------------------------------ running


def _spans(conn: Connection, query: StatsQuery, actor: Actor) -> tuple[Period, ...]:
    """The periods to bucket by. Unbounded, they span every recording in range, hidden
    ones too (a cheaper pass: a period no visible recording falls in yields no row);
    only when that span is too long does the reader's own extent decide, so an error
    never reports a time of a recording they may not see."""
    kind = query.period
    if kind is None:
        return ()
    if query.start is not None and query.end is not None:
        return periods(kind, query.start, query.end, query.zone)
    for who in (None, actor):
        first, last = conn.execute(extent(query, who)).one()
        if first is None or last is None:
            return ()
        start, end = query.start or first, query.end or last + timedelta(microseconds=1)
        try:
            return periods(kind, start, end, query.zone)
        except InvalidRequest:
            if who is actor:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def sum_counts(rows: Iterable[Counts]) -> Counts:
    out = Counts()
    for c in rows:
        out = Counts(recordings=out.recordings + c.recordings, seconds=out.seconds + c.seconds,
                     unknown_duration=out.unknown_duration + c.unknown_duration,
                     late=out.late + c.late, links=out.links + c.links)
    return out


def _rows(query: StatsQuery, found: Sequence[Any],
          spans: Sequence[Period]) -> tuple[StatRow, ...]:
    n = len(query.by)
    by_label = {p.label: p for p in spans}
    where = query.by.index(query.period) if query.period else None
    out = [StatRow(key=tuple(r[:n]), period=None if where is None else by_label.get(r[where]),
                   counts=Counts(recordings=int(r[n]), seconds=float(r[n + 1] or 0),
                                 unknown_duration=int(r[n + 2] or 0), late=int(r[n + 3] or 0),
                                 links=int(r[n + 4] or 0)))
           for r in found]
    return tuple(sorted(out, key=lambda r: tuple((v is None, v or "") for v in r.key)))


def compute(conn: Connection, query: StatsQuery, actor: Actor, *,
            now: datetime) -> StatisticsReport:
    """The statistics ``actor`` may see, by ``query``, as the database counts them: one
    pass over the visible recordings for the groups and the total."""
    spans = _spans(conn, query, actor)
    v = visible(query, actor, spans)
    if {"unit", "stage"} & set(query.by):
        found = conn.execute(by_link(query, v)).all()
        rows = _rows(query, [r[:-1] for r in found if not r[-1]], spans)
        total = _rows(_overall(query), [r[len(query.by):-1] for r in found if r[-1]], ())
        total_counts = total[0].counts if total else Counts()
    else:  # each recording is in one group: the groups add up to the total exactly
        rows = _rows(query, conn.execute(by_recording(query, v)).all(), spans)
        total_counts = sum_counts(r.counts for r in rows)
        if not query.by:  # the one row is the total itself
            rows = ()
    hidden = int(conn.execute(hidden_count(query, actor)).scalar_one())
    return StatisticsReport(query=query, generated_at=now, rows=rows,
                            total=total_counts, hidden=hidden)


def _overall(query: StatsQuery) -> StatsQuery:
    return StatsQuery(zone=query.zone, zone_name=query.zone_name, start=query.start,
                      end=query.end, offload_deadline_h=query.offload_deadline_h)


class StatisticsDesk:
    """Checks the reader (``stats.view``), counts what they may see, audits the read."""

    def __init__(self, *, catalog: Catalog, gate: Gate, clock: Callable[[], datetime],
                 coverage: CoverageSettings | None = None) -> None:
        self.catalog, self.gate, self.clock = catalog, gate, clock
        self.coverage = coverage

    def run(self, actor: Actor, query: StatsQuery, *,
            with_coverage: bool = False) -> StatisticsReport:
        """The counts; ``with_coverage``: also the coverage stages (needs the settings)."""
        self.gate.require(actor, P.STATS_VIEW, subjects=[])
        with self.catalog.engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # every count from one snapshot
                conn.execution_options(isolation_level="REPEATABLE READ")
            result = compute(conn, query, actor, now=self.clock())
        if with_coverage:
            if self.coverage is None:
                raise InvalidRequest("coverage statistics need the coverage settings")
            from records.statistics_coverage import coverage_stats

            result = replace(result, coverage=coverage_stats(
                self.catalog, actor, query, settings=self.coverage, now=result.generated_at))
        self.gate.read(actor, "statistics", [], {
            "by": list(query.by), "from": None if query.start is None else query.start.isoformat(),
            "to": None if query.end is None else query.end.isoformat(),
            "rows": len(result.rows), "recordings": result.total.recordings,
            "hidden": result.hidden,
            **({} if result.coverage is None else {
                "coverage_stages": result.coverage.total.stages,
                "hidden_cases": result.coverage.hidden_cases})})
        return result


__all__ = ["StatisticsDesk", "active_links", "by_link", "by_recording", "compute",
           "hidden_cases", "hidden_recordings", "sum_counts", "visible"]
