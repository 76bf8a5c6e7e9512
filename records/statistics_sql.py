"""Statistics computed by the database (GROUP BY), on SQLite and PostgreSQL alike.

One derived table of facts, a row per recording and active link (or one with no link),
carries everything a group needs: officer, the linked case's unit, the link's stage,
the period, the footage seconds and whether the offload was late. Recordings are
counted over its DISTINCT (group, recording) rows, links over its rows. Recordings
linked to a case the reader may not see (unit, or a label beyond their clearance; the
case's newest label) are excluded inside the same query and counted once as hidden.

Periods are compared as datetimes against the zone's month or year boundaries computed
here (a CASE over the bounds), so the database needs no time zone table and a month
is the station's month on both dialects. Seconds (for durations and late offloads) come
from a small expression compiled per dialect.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Float, and_, case, cast, func, or_, select, type_coerce
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.selectable import Select, Subquery

from archive.catalog import Catalog, DockSession, Recording
from archive.catalog.models import Rendition, Segment
from archive.catalog.types import UTCDateTime, table_of
from config.access import SENSITIVITIES, CoverageSettings
from integrity.errors import InvalidRequest
from records.models import Case, CaseEvent, CaseLink
from records.permissions import Actor, Gate, P
from records.statistics import Counts, Period, StatisticsReport, StatRow, StatsQuery, periods

_REC, _SESSION = table_of(Recording), table_of(DockSession)
_RENDITION, _SEGMENT = table_of(Rendition), table_of(Segment)
_CASE, _EVENT, _LINK = table_of(Case), table_of(CaseEvent), table_of(CaseLink)


class epoch_seconds(FunctionElement[float]):  # noqa: N801 (SQL function style)
    """Seconds since 1970 of a catalog datetime (stored as UTC on both dialects)."""

    type = Float()
    inherit_cache = True
    name = "epoch_seconds"


@compiles(epoch_seconds)
def _epoch_pg(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {arg}) AS DOUBLE PRECISION)"


@compiles(epoch_seconds, "sqlite")
def _epoch_sqlite(element: epoch_seconds, compiler: Any, **kw: Any) -> str:
    # julianday keeps milliseconds: plenty for hours and a deadline in hours.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


class probed_seconds(FunctionElement[float]):  # noqa: N801
    """A rendition's probed ``duration_s`` (JSON text), when it is a number."""

    type = Float()
    inherit_cache = True
    name = "probed_seconds"


@compiles(probed_seconds)
def _probed_pg(element: probed_seconds, compiler: Any, **kw: Any) -> str:
    doc = f"CAST({compiler.process(element.clauses, **kw)} AS JSONB)"
    return (f"CASE WHEN jsonb_typeof({doc} -> 'duration_s') = 'number' "
            f"THEN CAST({doc} ->> 'duration_s' AS DOUBLE PRECISION) END")


@compiles(probed_seconds, "sqlite")
def _probed_sqlite(element: probed_seconds, compiler: Any, **kw: Any) -> str:
    doc = compiler.process(element.clauses, **kw)
    return (f"CASE WHEN json_type({doc}, '$.duration_s') IN ('integer', 'real') "
            f"THEN json_extract({doc}, '$.duration_s') END")


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


def footage_seconds() -> ColumnElement[float]:
    """A recording's footage seconds: its longest ok rendition (last segment's end, else
    the probed duration when positive); NULL when unknown.

    Correlated scalar subqueries (indexed by recording, then by rendition): a joined
    derived table of every rendition made SQLite rescan it per recording.
    """
    ok = and_(_RENDITION.c.recording_id == _REC.c.id, _RENDITION.c.status == "ok")
    segments = (select(cast(func.max(_SEGMENT.c.end_us), Float) / 1_000_000.0)
                .select_from(_RENDITION.join(_SEGMENT,
                                             _SEGMENT.c.rendition_id == _RENDITION.c.id))
                .where(ok).correlate(_REC).scalar_subquery())
    probed = probed_seconds(_RENDITION.c.media)
    positive = (select(func.max(probed)).where(ok, probed > 0).correlate(_REC)
                .scalar_subquery())
    return type_coerce(func.coalesce(segments, positive), Float)


def recorded_at() -> ColumnElement[datetime]:
    """When a recording was made: camera start, else (clock unknown) ingest time."""
    return type_coerce(func.coalesce(_REC.c.camera_start, _REC.c.ingested_at), UTCDateTime())


def in_range(query: StatsQuery) -> list[ColumnElement[bool]]:
    when = recorded_at()
    out: list[ColumnElement[bool]] = []
    if query.start is not None:
        out.append(when >= query.start)
    if query.end is not None:
        out.append(when < query.end)
    return out


def bucket(spans: Sequence[Period]) -> ColumnElement[Any]:
    """The label of the period a recording falls in (rows are already in range)."""
    when = recorded_at()
    if not spans:
        return type_coerce(None, UTCDateTime())
    return case(*[(when < p.end, p.label) for p in spans])


def facts(query: StatsQuery, actor: Actor, spans: Sequence[Period]) -> Subquery:
    """One row per visible recording in range and active link (or none), with the
    recording's seconds and late flag (computed once per recording, below the links)."""
    offloaded = func.coalesce(_SESSION.c.started_at, _REC.c.ingested_at)
    seconds = footage_seconds().label("seconds")
    per_rec = (select(_REC.c.id, _REC.c.officer_id, _REC.c.camera_start, seconds,
                      bucket(spans).label("period"),
                      epoch_seconds(offloaded).label("offloaded"))
               .select_from(_REC.outerjoin(_SESSION, _SESSION.c.id == _REC.c.session_id))
               .where(_REC.c.id.not_in(hidden_recordings(actor)), *in_range(query))
               # Computed once per recording: inlined, SQLite evaluated the seconds
               # subqueries once for every place they are used.
               .cte("visible_recording").prefix_with("MATERIALIZED"))
    ended = epoch_seconds(per_rec.c.camera_start) + func.coalesce(per_rec.c.seconds, 0.0)
    late = case((and_(per_rec.c.camera_start.is_not(None),
                      per_rec.c.offloaded - ended > query.offload_deadline_h * 3600), 1),
                else_=0)
    links = active_links("active_link")
    linked = _CASE.alias("linked_case")
    joined = (per_rec.outerjoin(links, links.c.recording_id == per_rec.c.id)
              .outerjoin(linked, linked.c.id == links.c.case_id))
    return (select(per_rec.c.id.label("recording_id"), per_rec.c.officer_id.label("officer"),
                   linked.c.unit.label("unit"), links.c.stage.label("stage"),
                   links.c.id.label("link_id"), per_rec.c.seconds, late.label("late"),
                   per_rec.c.period)
            .select_from(joined).subquery("fact"))


def _keys(query: StatsQuery, table: Subquery) -> list[ColumnElement[Any]]:
    return [table.c["period" if d in ("month", "year") else d] for d in query.by]


def counted(query: StatsQuery, actor: Actor, spans: Sequence[Period]) -> Select[Any]:
    """Per group: recordings (each once), their seconds, unknown durations, late ones,
    and their links; one pass over the facts."""
    f = facts(query, actor, spans)
    inner = _keys(query, f)
    per = (select(*inner, f.c.recording_id, f.c.seconds, f.c.late,
                  func.count(f.c.link_id).label("links"))
           .group_by(*inner, f.c.recording_id, f.c.seconds, f.c.late)
           .subquery("per_recording"))
    keys = _keys(query, per)
    return (select(*keys, func.count().label("recordings"),
                   func.sum(per.c.seconds).label("seconds"),
                   func.sum(case((per.c.seconds.is_(None), 1), else_=0)).label("unknown"),
                   func.sum(per.c.late).label("late"), func.sum(per.c.links).label("links"))
            .group_by(*keys))


def hidden_count(query: StatsQuery, actor: Actor) -> Select[Any]:
    return (select(func.count()).select_from(_REC)
            .where(_REC.c.id.in_(hidden_recordings(actor)), *in_range(query)))


def extent(query: StatsQuery, actor: Actor) -> Select[datetime, datetime]:
    """The first and last time of the visible recordings in range."""
    when = recorded_at()
    return (select(type_coerce(func.min(when), UTCDateTime()),
                   type_coerce(func.max(when), UTCDateTime()))
            .where(_REC.c.id.not_in(hidden_recordings(actor)), *in_range(query)))


# ------------------------------------------------------------------ running


def _spans(conn: Connection, query: StatsQuery, actor: Actor) -> tuple[Period, ...]:
    kind = query.period
    if kind is None:
        return ()
    start, end = query.start, query.end
    if start is None or end is None:
        first, last = conn.execute(extent(query, actor)).one()
        if first is None or last is None:
            return ()
        start = start or first
        end = end or last + timedelta(microseconds=1)
    return periods(kind, start, end, query.zone)


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
    """The statistics ``actor`` may see, by ``query``, as the database counts them."""
    overall = StatsQuery(zone=query.zone, zone_name=query.zone_name, start=query.start,
                         end=query.end, offload_deadline_h=query.offload_deadline_h)
    total = _rows(overall, conn.execute(counted(overall, actor, ())).all(), ())
    rows: tuple[StatRow, ...] = ()  # no dimension: the total only
    if query.by:
        spans = _spans(conn, query, actor)
        rows = _rows(query, conn.execute(counted(query, actor, spans)).all(), spans)
    hidden = int(conn.execute(hidden_count(query, actor)).scalar_one())
    return StatisticsReport(query=query, generated_at=now, rows=rows,
                            total=total[0].counts if total else Counts(), hidden=hidden)


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


__all__ = ["StatisticsDesk", "active_links", "compute", "epoch_seconds", "footage_seconds",
           "counted", "facts", "hidden_cases", "hidden_recordings"]
