"""Coverage of the recording list (音像记录事项清单): pure, no database, clock or I/O.

The caller hands in each case's facts (declared stage windows, active links as absolute
times with the footage's kind, the stage applicability decisions in force), the settings
and ``now``. The stages that apply to a case are its type's checklist entries, less those
marked 不适用 and plus those marked applicable. Each is:

- ``not_applicable`` (不适用): marked so, with the decision (reason, who, when);
- ``missing``: no linked footage of the entry's 记录方式 (``mode``: a photo does not
  cover a stage that needs video; footage of another kind is listed, not counted);
- ``gaps``: a full-process (全过程) stage whose footage leaves holes longer than
  ``gap_tolerance_s`` in the declared window, including uncovered time at its start and
  end — never ``covered``. Without a declared window only holes between the first and
  last footage can be seen, and the finding says the window is unknown;
- ``covered``: otherwise.

This module is the only judge of coverage: the statistics count its findings per case.

Footage whose camera time or duration is unknown is listed as such and never fills time.
Several declarations of one stage are merged into their union (the conservative reading:
more time to fill, never less); a window that ends after ``now`` is judged up to ``now``.
Every summary number is a count over the per-case findings. The values live in
:mod:`records.coverage_values` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import NamedTuple

from config.access import CoverageRequirement, CoverageSettings, RecordingMode
from records.coverage_values import (
    SATISFIES,
    STATUSES,
    CaseFacts,
    CaseFinding,
    CoverageReport,
    DeclaredStage,
    Gap,
    LateFinding,
    LinkFacts,
    StageDecision,
    StageFinding,
    StageStatus,
    Tally,
    require_aware,
)


def merge(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The union of some [start, end) spans, sorted, touching spans joined."""
    out: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def holes(window: tuple[datetime, datetime], spans: Sequence[tuple[datetime, datetime]],
          tolerance: timedelta, *, edges: bool = True) -> list[Gap]:
    """Uncovered stretches of ``window`` longer than ``tolerance``.

    With ``edges`` False only holes between covered spans count (the window is merely
    the extent of the footage).
    """
    w_start, w_end = window
    inside = merge((max(a, w_start), min(b, w_end)) for a, b in spans if a < w_end and b > w_start)
    if not inside:
        return [Gap(start=w_start, end=w_end, kind="window")] if (
            edges and w_end - w_start > tolerance) else []
    found: list[Gap] = []
    if edges and inside[0][0] - w_start > tolerance:
        found.append(Gap(start=w_start, end=inside[0][0], kind="window_start"))
    for (_, a_end), (b_start, _) in zip(inside, inside[1:], strict=False):
        if b_start - a_end > tolerance:
            found.append(Gap(start=a_end, end=b_start, kind="inside"))
    if edges and w_end - inside[-1][1] > tolerance:
        found.append(Gap(start=inside[-1][1], end=w_end, kind="window_end"))
    return found


class Need(NamedTuple):
    """What a stage of a case needs: the whole way through, and of which kind."""

    full_process: bool
    mode: RecordingMode


def _join(a: RecordingMode, b: RecordingMode) -> RecordingMode:
    """Two entries for one stage: both must be met (video meets every mode)."""
    return a if b in (a, "any") else b if a == "any" else "video"


def _needs(entries: Iterable[CoverageRequirement]) -> dict[str, Need]:
    out: dict[str, Need] = {}
    for req in entries:
        old = out.get(req.stage)
        mode = req.recording_mode if old is None else _join(old.mode, req.recording_mode)
        out[req.stage] = Need(bool(old and old.full_process) or req.full_process, mode)
    return out


def _requirements(settings: CoverageSettings, facts: CaseFacts) -> dict[str, Need]:
    """Stage → need, for the stages that apply to the case (checklist order; stages marked
    applicable outside the case type's list after it, needing what the list says of the
    stage for any type, else any footage)."""
    listed = _needs(r for r in settings.requirements
                    if not r.case_types or facts.case_type in r.case_types)
    anywhere = _needs(settings.requirements)
    for d in sorted(facts.decisions, key=lambda d: d.stage):
        if d.applicable and d.stage not in listed:
            listed[d.stage] = anywhere.get(d.stage, Need(False, "any"))
    return listed


def _full_process(windows: Sequence[tuple[datetime, datetime]] | None,
                  footage: Sequence[LinkFacts], tolerance: timedelta,
                  ) -> tuple[list[Gap], list[str]]:
    """Gaps in the declared ``windows`` (None: not declared) and notes on what is unknown."""
    spans = [(f.start, f.end) for f in footage if f.start is not None and f.end is not None]
    unplaced = len(footage) - len(spans)
    notes = [f"{unplaced} recording(s) with unknown times not placed in time"] if unplaced else []
    if windows is not None:
        return [g for w in windows for g in holes(w, spans, tolerance)], notes
    notes.append("stage window not declared: only holes between footage are checked")
    if not spans:
        return [], notes
    extent = (min(a for a, _ in spans), max(b for _, b in spans))
    return holes(extent, spans, tolerance, edges=False), notes


def _stage(facts: CaseFacts, stage: str, need: Need | None, *, now: datetime,
           tolerance: timedelta) -> StageFinding:
    """The finding of one stage; ``need`` None: not required (footage linked anyway)."""
    footage = tuple(sorted((f for f in facts.links if f.stage == stage),
                           key=lambda f: (f.start is None, f.start or now, f.recording_id)))
    declared = merge((d.start, d.end) for d in facts.declared if d.stage == stage)
    decision = next((d for d in facts.decisions if d.stage == stage), None)
    finding = StageFinding(stage=stage, required=need is not None,
                           full_process=bool(need and need.full_process), status="missing",
                           footage=footage, windows=tuple(declared),
                           mode=need.mode if need else "any", decision=decision)
    counted = finding.counted
    notes = [f"{len(footage) - len(counted)} linked recording(s) not counted: the stage "
             f"needs {finding.mode}"] if len(counted) < len(footage) else []
    if need is not None and decision is not None and not decision.applicable:
        if footage:
            notes.append(f"{len(footage)} recording(s) linked at a stage marked 不适用")
        return replace(finding, status="not_applicable", notes=tuple(notes))
    if not counted:
        return replace(finding, notes=tuple(notes))
    if not finding.full_process:
        return replace(finding, status="covered", notes=tuple(notes))
    judged = [(a, min(b, now)) for a, b in declared if a < now]
    gaps, more = _full_process(judged if declared else None, counted, tolerance)
    if any(b > now for _, b in declared):
        more.append("stage window extends past now: judged up to now")
    return replace(finding, status="gaps" if gaps else "covered", gaps=tuple(gaps),
                   notes=tuple(notes + more))


def _late(links: Iterable[LinkFacts], deadline: timedelta) -> tuple[LateFinding, ...]:
    seen: dict[str, LateFinding] = {}
    for f in links:
        if f.recorded_at is not None and f.offloaded_at - f.recorded_at > deadline:
            seen.setdefault(f.recording_id, LateFinding(
                recording_id=f.recording_id, officer_id=f.officer_id,
                recorded_at=f.recorded_at, offloaded_at=f.offloaded_at))
    return tuple(sorted(seen.values(), key=lambda x: (x.recorded_at, x.recording_id)))


def case_finding(facts: CaseFacts, *, settings: CoverageSettings, now: datetime) -> CaseFinding:
    tolerance = timedelta(seconds=settings.gap_tolerance_s)
    wanted = _requirements(settings, facts)
    extra = sorted({f.stage for f in facts.links} - set(wanted))
    stages = [_stage(facts, s, need, now=now, tolerance=tolerance)
              for s, need in wanted.items()]
    stages += [_stage(facts, s, None, now=now, tolerance=tolerance) for s in extra]
    unknown = sorted({f.recording_id for f in facts.links if f.time != "known"})
    officers = sorted({f.officer_id for f in facts.links}, key=lambda o: (o is None, o or ""))
    return CaseFinding(case_id=facts.case_id, number=facts.number, case_type=facts.case_type,
                       unit=facts.unit, status=facts.status, stages=tuple(stages),
                       late=_late(facts.links, timedelta(hours=settings.offload_deadline_h)),
                       unknown_time=tuple(unknown), officers=tuple(officers or [None]))


def _summaries(cases: Sequence[CaseFinding],
               ) -> tuple[tuple[tuple[str, Tally], ...], tuple[tuple[str | None, Tally], ...]]:
    units: dict[str, Tally] = {}
    officers: dict[str | None, Tally] = {}
    for c in cases:
        units[c.unit] = units.get(c.unit, Tally()) + c.tally()
        for o in c.officers:
            officers[o] = officers.get(o, Tally()) + c.tally(o, own_only=True)
    by_officer = sorted(officers.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    return tuple(sorted(units.items())), tuple(by_officer)


def report(cases: Iterable[CaseFacts], *, settings: CoverageSettings, now: datetime,
           hidden: int = 0, hidden_recordings: int = 0) -> CoverageReport:
    """The coverage findings of ``cases`` and their summary per unit and per officer.

    An officer's row counts the cases in which their footage is linked (stages, covered,
    missing, gaps of those cases) and, of late and unknown-time recordings, their own.
    """
    require_aware("now", now)
    findings = tuple(case_finding(c, settings=settings, now=now)
                     for c in sorted(cases, key=lambda c: (c.unit, c.number)))
    by_unit, by_officer = _summaries(findings)
    return CoverageReport(generated_at=now, offload_deadline_h=settings.offload_deadline_h,
                          gap_tolerance_s=settings.gap_tolerance_s, cases=findings,
                          hidden=hidden, hidden_recordings=hidden_recordings,
                          by_unit=by_unit, by_officer=by_officer)


__all__ = ["SATISFIES", "STATUSES", "CaseFacts", "CaseFinding", "CoverageReport",
           "DeclaredStage", "Gap", "LateFinding", "LinkFacts", "Need", "StageDecision",
           "StageFinding", "StageStatus", "Tally", "case_finding", "holes", "merge", "report"]
