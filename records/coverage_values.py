"""The values of a coverage run (:mod:`records.coverage`): its inputs (a case's facts) and
its findings, frozen and JSON-ready. Pure: no database, clock or I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from config.access import RecordingMode

StageStatus = Literal["covered", "missing", "gaps", "not_applicable"]
STATUSES: tuple[StageStatus, ...] = ("covered", "missing", "gaps", "not_applicable")
#: The recording kinds that satisfy each 记录方式 (a video has sound and pictures).
SATISFIES: dict[RecordingMode, frozenset[str]] = {
    "video": frozenset({"video"}), "audio": frozenset({"audio", "video"}),
    "photo": frozenset({"photo", "video"}), "any": frozenset({"video", "audio", "photo"})}
GapKind = Literal["window", "window_start", "inside", "window_end"]
TimeState = Literal["known", "camera_time_unknown", "duration_unknown"]


def require_aware(what: str, value: datetime | None) -> None:
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
    kind: str = "video"  # the recording's: video | audio | photo | log | other

    def __post_init__(self) -> None:
        for what in ("start", "end", "recorded_at", "offloaded_at"):
            require_aware(f"link {self.recording_id} {what}", getattr(self, what))
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"link {self.recording_id}: end before start")

    @property
    def time(self) -> TimeState:
        if self.start is None:
            return "camera_time_unknown"
        return "known" if self.end is not None else "duration_unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class StageDecision:
    """The applicability decision in force for a stage of a case (its newest)."""

    stage: str
    applicable: bool
    reason: str
    actor: str
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"applicable": self.applicable, "reason": self.reason, "actor": self.actor,
                "at": _iso(self.at)}


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseFacts:
    case_id: str
    number: str
    case_type: str
    unit: str
    status: str
    declared: tuple[DeclaredStage, ...] = ()
    links: tuple[LinkFacts, ...] = ()
    decisions: tuple[StageDecision, ...] = ()  # in force: one per stage at most

    def __post_init__(self) -> None:
        if len({d.stage for d in self.decisions}) != len(self.decisions):
            raise ValueError(f"case {self.number}: two decisions in force for one stage")
        for d in self.declared:
            require_aware(f"case {self.number} stage {d.stage}", d.start)
            require_aware(f"case {self.number} stage {d.stage}", d.end)
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
    required: bool  # applies to the case (not_applicable: it would, but was marked so)
    full_process: bool
    status: StageStatus
    footage: tuple[LinkFacts, ...]  # every active link at the stage, counted or not
    windows: tuple[tuple[datetime, datetime], ...]  # declared, merged
    gaps: tuple[Gap, ...] = ()
    notes: tuple[str, ...] = ()
    mode: RecordingMode = "any"
    decision: StageDecision | None = None  # the applicability decision in force, if any

    @property
    def counted(self) -> tuple[LinkFacts, ...]:
        """The footage of a kind that satisfies the stage's 记录方式."""
        return tuple(f for f in self.footage if f.kind in SATISFIES[self.mode])

    def to_json(self) -> dict[str, object]:
        ok = {f.recording_id for f in self.counted}
        return {"stage": self.stage, "required": self.required,
                "full_process": self.full_process, "mode": self.mode, "status": self.status,
                "decision": None if self.decision is None else self.decision.to_json(),
                "windows": [[_iso(a), _iso(b)] for a, b in self.windows],
                "footage": [_footage_json(f, f.recording_id in ok) for f in self.footage],
                "gaps": [g.to_json() for g in self.gaps], "notes": list(self.notes)}


def _footage_json(f: LinkFacts, counts: bool) -> dict[str, object]:
    return {"recording_id": f.recording_id, "officer_id": f.officer_id, "kind": f.kind,
            "counts": counts, "start": _iso(f.start), "end": _iso(f.end), "time": f.time}


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
    required: int = 0  # stages that apply: covered + missing + gap_stages
    covered: int = 0
    missing: int = 0
    gaps: int = 0  # holes, over all stages
    gap_stages: int = 0  # stages whose status is gaps
    not_applicable: int = 0  # checklist stages marked 不适用
    late: int = 0
    unknown_time: int = 0

    def __add__(self, other: Tally) -> Tally:
        return Tally(**{k: getattr(self, k) + getattr(other, k) for k in _TALLY_FIELDS})

    def to_json(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in _TALLY_FIELDS}


_TALLY_FIELDS = ("cases", "required", "covered", "missing", "gaps", "gap_stages",
                 "not_applicable", "late", "unknown_time")


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
        """The stages that apply (not those marked 不适用)."""
        return tuple(s for s in self.stages if s.required and s.status != "not_applicable")

    def tally(self, officer: str | None = None, *, own_only: bool = False) -> Tally:
        """Counts of this case; with ``own_only``, late/unknown count ``officer``'s only."""
        req = self.required
        mine = {f.recording_id for s in self.stages for f in s.footage
                if f.officer_id == officer}
        return Tally(cases=1, required=len(req),
                     covered=sum(s.status == "covered" for s in req),
                     missing=sum(s.status == "missing" for s in req),
                     gaps=sum(len(s.gaps) for s in req),
                     gap_stages=sum(s.status == "gaps" for s in req),
                     not_applicable=sum(s.status == "not_applicable" for s in self.stages),
                     late=sum(not own_only or x.recording_id in mine for x in self.late),
                     unknown_time=sum(not own_only or r in mine for r in self.unknown_time))

    @property
    def complete(self) -> bool:
        t = self.tally()
        return t.missing == 0 and t.gap_stages == 0

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


__all__ = ["SATISFIES", "STATUSES", "CaseFacts", "CaseFinding", "CoverageReport",
           "DeclaredStage", "Gap", "GapKind", "LateFinding", "LinkFacts", "StageDecision",
           "StageFinding", "StageStatus", "Tally", "TimeState", "require_aware"]
