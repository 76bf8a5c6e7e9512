"""Coverage counts for the statistics (统计分析): stages covered, missing, with gaps, 不适用.

Not SQL: the pure coverage module (:mod:`records.coverage`) stays the only judge of a
stage's status, so these counts are its per-case findings added up — the same gap
tolerance, 记录方式 and applicability decisions as `evidock coverage`. The cost is one
coverage run over the cases in range (their links, windows and renditions), so it is
asked for explicitly (``coverage=true``, `evidock stats --coverage`).

Counted per checklist stage of a case (the stages that apply plus those marked 不适用),
grouped by unit (the case's), stage and month or year of the stage's time in the
station's zone: the start of its declared window, else of its first counted footage,
else the case's creation. Officer is no dimension here (a stage is the case's, not one
officer's); grouped by officer, the coverage rows leave it out. Cases the reader may
not see are left out and counted in ``hidden_cases``; footage hidden from them by
another case's label is left out of the finding (as in `evidock coverage`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo

from archive.catalog import Catalog
from config.access import CoverageSettings
from records.casebook import Casebook, CaseView
from records.coverage import CaseFinding, StageFinding, case_finding
from records.coverage_load import in_scope, load_facts
from records.labels import hidden_recordings
from records.permissions import Actor
from records.statistics import COVERAGE_METRICS, CoverageStats, Dimension, StageCounts, StatsQuery


def _one(status: str) -> StageCounts:
    return StageCounts(stages=1, covered=status == "covered", missing=status == "missing",
                       gaps=status == "gaps", not_applicable=status == "not_applicable")


def stage_time(stage: StageFinding, created_at: datetime) -> datetime:
    """When a stage took place, for its month or year (see the module's docstring)."""
    if stage.windows:
        return stage.windows[0][0]
    starts = [f.start for f in stage.counted if f.start is not None]
    return min(starts) if starts else created_at


def _key(by: Sequence[Dimension], finding: CaseFinding, stage: str, when: datetime,
         zone: tzinfo) -> tuple[str, ...]:
    local = when.astimezone(zone)
    values = {"unit": finding.unit, "stage": stage, "year": f"{local.year:04d}",
              "month": f"{local.year:04d}-{local.month:02d}"}
    return tuple(values[d] for d in by)


def count(findings: Iterable[tuple[CaseFinding, datetime]], query: StatsQuery, *,
          hidden_cases: int = 0, hidden: int = 0) -> CoverageStats:
    """Pure: the stages of ``findings`` (each with its case's creation time) whose time
    falls in the query's range, counted by status and grouped."""
    by = tuple(d for d in query.by if d != "officer")
    groups: dict[tuple[str, ...], StageCounts] = {}
    total, cases = StageCounts(), 0
    for finding, created in findings:
        cases += 1
        for s in finding.stages:
            when = stage_time(s, created)
            if not s.required or (query.start is not None and when < query.start) or (
                    query.end is not None and when >= query.end):
                continue
            key = _key(by, finding, s.stage, when, query.zone)
            groups[key] = groups.get(key, StageCounts()) + _one(s.status)
            total += _one(s.status)
    return CoverageStats(by=by, rows=tuple(sorted(groups.items())), total=total, cases=cases,
                         hidden_cases=hidden_cases, hidden_recordings=hidden)


def coverage_stats(catalog: Catalog, actor: Actor, query: StatsQuery, *,
                   settings: CoverageSettings, now: datetime) -> CoverageStats:
    """Run the coverage module over the cases ``actor`` may see that were open in the
    range, and count their stages (the caller has checked ``stats.view``)."""
    book = Casebook(catalog=catalog)
    # Not by creation: a case is often filed after its footage was made; the stages'
    # own times decide the range (a case closed before it began has none in it).
    wanted = [c for c in book.cases() if in_scope(c, unit=None, since=query.start)]
    seen: list[CaseView] = [c for c in wanted
                            if actor.sees(unit=c.unit, sensitivity=c.sensitivity)]
    ids = {c.id for c in seen}
    unseen = hidden_recordings(book, actor, {
        x.recording_id for x in book.links() if x.active and x.case_id in ids},
        labels_only=True)
    facts = load_facts(catalog, seen, hide=frozenset(unseen))
    created = {c.id: c.created_at for c in seen}
    findings = ((case_finding(f, settings=settings, now=now), created[f.case_id])
                for f in facts)
    return count(findings, query, hidden_cases=len(wanted) - len(seen), hidden=len(unseen))


__all__ = ["COVERAGE_METRICS", "CoverageStats", "StageCounts", "count", "coverage_stats",
           "stage_time"]
