"""Coverage of the recording list (音像记录事项清单): pure, no database, clock or I/O.

The caller hands in each case's facts (declared stage windows, active links as absolute
times), the settings and ``now``. Per case, every required stage is ``covered`` (footage
is linked at it) or ``missing``. For full-process (全过程) stages the linked footage must
also fill the declared window: holes longer than ``gap_tolerance_s`` are gaps, including
uncovered time at the start and end of the window. Without a declared window only holes
between the first and last footage can be seen, and the finding says the window is unknown.

Footage whose camera time or duration is unknown is listed as such and never fills time.
Several declarations of one stage are merged into their union (the conservative reading:
more time to fill, never less); a window that ends after ``now`` is judged up to ``now``.
Every summary number is a count over the per-case findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal, NamedTuple

from config.access import CoverageSettings

StageStatus = Literal["covered", "missing"]
GapKind = Literal["window", "window_start", "inside", "window_end"]
TimeState = Literal["known", "camera_time_unknown", "duration_unknown"]


def _aware(what: str, value: datetime | None) -> None:
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


class DeclaredStage(NamedTuple):
    """When a stage took place, as the written record says: [start, end)."""

    stage: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkFacts:
    """One active link as absolute times. ``start``/``end`` None: not known."""

    recording_id: str
    stage: str
    start: datetime | None
    end: datetime | None
    officer_id: str | None
    recorded_at: datetime | None  # the camera's start time of the recording
    offloaded_at: datetime

    def __post_init__(self) -> None:
        for what in ("start", "end", "recorded_at", "offloaded_at"):
            _aware(f"link {self.recording_id} {what}", getattr(self, what))
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"link {self.recording_id}: end before start")

    @property
    def time(self) -> TimeState:
        if self.start is None:
            return "camera_time_unknown"
        return "known" if self.end is not None else "duration_unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseFacts:
    case_id: str
    number: str
    case_type: str
    unit: str
    status: str
    declared: tuple[DeclaredStage, ...] = ()
    links: tuple[LinkFacts, ...] = ()

    def __post_init__(self) -> None:
        for d in self.declared:
            _aware(f"case {self.number} stage {d.stage}", d.start)
            _aware(f"case {self.number} stage {d.stage}", d.end)
            if d.end <= d.start:
                raise ValueError(f"case {self.number} stage {d.stage}: end not after start")


@dataclass(frozen=True, slots=True, kw_only=True)
class Gap:
    start: datetime
    end: datetime
    kind: GapKind

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def to_json(self) -> dict[str, object]:
        return {"start": _iso(self.start), "end": _iso(self.end), "kind": self.kind,
                "seconds": self.seconds}


@dataclass(frozen=True, slots=True, kw_only=True)
class StageFinding:
    stage: str
    required: bool
    full_process: bool
    status: StageStatus
    footage: tuple[LinkFacts, ...]
    windows: tuple[tuple[datetime, datetime], ...]  # declared, merged
    gaps: tuple[Gap, ...] = ()
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"stage": self.stage, "required": self.required,
                "full_process": self.full_process, "status": self.status,
                "windows": [[_iso(a), _iso(b)] for a, b in self.windows],
                "footage": [_footage_json(f) for f in self.footage],
                "gaps": [g.to_json() for g in self.gaps], "notes": list(self.notes)}


def _footage_json(f: LinkFacts) -> dict[str, object]:
    return {"recording_id": f.recording_id, "officer_id": f.officer_id,
            "start": _iso(f.start), "end": _iso(f.end), "time": f.time}


@dataclass(frozen=True, slots=True, kw_only=True)
class LateFinding:
    recording_id: str
    officer_id: str | None
    recorded_at: datetime
    offloaded_at: datetime

    @property
    def delay_h(self) -> float:
        return (self.offloaded_at - self.recorded_at).total_seconds() / 3600

    def to_json(self) -> dict[str, object]:
        return {"recording_id": self.recording_id, "officer_id": self.officer_id,
                "recorded_at": _iso(self.recorded_at), "offloaded_at": _iso(self.offloaded_at),
                "delay_h": round(self.delay_h, 3)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Tally:
    cases: int = 0
    required: int = 0
    covered: int = 0
    missing: int = 0
    gaps: int = 0
    late: int = 0
    unknown_time: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(**{k: getattr(self, k) + getattr(other, k) for k in _TALLY_FIELDS})

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in _TALLY_FIELDS}


_TALLY_FIELDS = ("cases", "required", "covered", "missing", "gaps", "late", "unknown_time")


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseFinding:
    case_id: str
    number: str
    case_type: str
    unit: str
    status: str
    stages: tuple[StageFinding, ...]
    late: tuple[LateFinding, ...]
    unknown_time: tuple[str, ...]  # recordings whose camera time or duration is unknown
    officers: tuple[str | None, ...]  # whose footage is linked (None: no officer known)

    @property
    def required(self) -> tuple[StageFinding, ...]:
        return tuple(s for s in self.stages if s.required)

    def tally(self, officer: str | None = None, *, own_only: bool = False) -> Tally:
        """Counts of this case; with ``own_only``, late/unknown count ``officer``'s only."""
        req = self.required
        mine = {f.recording_id for s in self.stages for f in s.footage
                if f.officer_id == officer}
        return Tally(cases=1, required=len(req),
                     covered=sum(s.status == "covered" for s in req),
                     missing=sum(s.status == "missing" for s in req),
                     gaps=sum(len(s.gaps) for s in req),
                     late=sum(not own_only or x.recording_id in mine for x in self.late),
                     unknown_time=sum(not own_only or r in mine for r in self.unknown_time))

    @property
    def complete(self) -> bool:
        t = self.tally()
        return t.missing == 0 and t.gaps == 0

    def to_json(self) -> dict[str, object]:
        return {"case_id": self.case_id, "number": self.number, "type": self.case_type,
                "unit": self.unit, "status": self.status, "complete": self.complete,
                "stages": [s.to_json() for s in self.stages],
                "late": [x.to_json() for x in self.late],
                "unknown_time": list(self.unknown_time), "officers": list(self.officers),
                "tally": self.tally().to_json()}


@dataclass(frozen=True, slots=True, kw_only=True)
class CoverageReport:
    generated_at: datetime
    offload_deadline_h: float
    gap_tolerance_s: float
    cases: tuple[CaseFinding, ...]
    hidden: int = 0  # cases left out because the reader may not see them
    # linked recordings left out: beyond the reader through another case they are in
    hidden_recordings: int = 0
    by_unit: tuple[tuple[str, Tally], ...] = field(default=())
    by_officer: tuple[tuple[str | None, Tally], ...] = field(default=())

    @property
    def total(self) -> Tally:
        return sum((c.tally() for c in self.cases), Tally())

    @property
    def complete(self) -> bool:
        return all(c.complete for c in self.cases)

    def to_json(self) -> dict[str, object]:
        return {"generated_at": _iso(self.generated_at), "complete": self.complete,
                "settings": {"offload_deadline_h": self.offload_deadline_h,
                             "gap_tolerance_s": self.gap_tolerance_s},
                "hidden": self.hidden, "hidden_recordings": self.hidden_recordings,
                "total": self.total.to_json(),
                "cases": [c.to_json() for c in self.cases],
                "by_unit": [{"unit": u, **t.to_json()} for u, t in self.by_unit],
                "by_officer": [{"officer_id": o, **t.to_json()} for o, t in self.by_officer]}


# ---------------------------------------------------------------------------- logic


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


def _requirements(settings: CoverageSettings, case_type: str) -> dict[str, bool]:
    """Stage → full process, for the requirements that apply to ``case_type`` (in order)."""
    out: dict[str, bool] = {}
    for req in settings.requirements:
        if not req.case_types or case_type in req.case_types:
            out[req.stage] = out.get(req.stage, False) or req.full_process
    return out


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


def _stage(facts: CaseFacts, stage: str, *, required: bool, full: bool, now: datetime,
           tolerance: timedelta) -> StageFinding:
    footage = tuple(sorted((f for f in facts.links if f.stage == stage),
                           key=lambda f: (f.start is None, f.start or now, f.recording_id)))
    declared = merge((d.start, d.end) for d in facts.declared if d.stage == stage)
    finding = StageFinding(stage=stage, required=required, full_process=full,
                           status="covered" if footage else "missing", footage=footage,
                           windows=tuple(declared))
    if not (required and full and footage):
        return finding
    judged = [(a, min(b, now)) for a, b in declared if a < now]
    gaps, notes = _full_process(judged if declared else None, footage, tolerance)
    if any(b > now for _, b in declared):
        notes.append("stage window extends past now: judged up to now")
    return replace(finding, gaps=tuple(gaps), notes=tuple(notes))


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
    wanted = _requirements(settings, facts.case_type)
    extra = sorted({f.stage for f in facts.links} - set(wanted))
    stages = [_stage(facts, s, required=True, full=full, now=now, tolerance=tolerance)
              for s, full in wanted.items()]
    stages += [_stage(facts, s, required=False, full=False, now=now, tolerance=tolerance)
               for s in extra]
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
    _aware("now", now)
    findings = tuple(case_finding(c, settings=settings, now=now)
                     for c in sorted(cases, key=lambda c: (c.unit, c.number)))
    by_unit, by_officer = _summaries(findings)
    return CoverageReport(generated_at=now, offload_deadline_h=settings.offload_deadline_h,
                          gap_tolerance_s=settings.gap_tolerance_s, cases=findings,
                          hidden=hidden, hidden_recordings=hidden_recordings,
                          by_unit=by_unit, by_officer=by_officer)


__all__ = ["CaseFacts", "CaseFinding", "CoverageReport", "DeclaredStage", "Gap", "LateFinding",
           "LinkFacts", "StageFinding", "Tally", "case_finding", "holes", "merge", "report"]
