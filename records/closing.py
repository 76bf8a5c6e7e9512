"""When a case may be recorded as closed: never before what the station knows of it.

A closing date starts the case's retention period, so an earlier date deletes sooner.
A date given for ``case close --date`` must not be earlier than the case's own record:
its creation, its last reopening, the start of footage linked to it, the end of a stage
recorded for it. Footage and stage times come from cameras and from people, so each is
taken no later than the station saw it (ingest, the stage row): a wrong camera clock or a
typed future stage never makes a case impossible to close. Nor may the date lie ahead of
the station's clock beyond :data:`CLOCK_TOLERANCE`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from archive.catalog import Recording
from integrity.errors import InvalidRequest
from records.casebook import CaseView, LinkView
from records.models import CaseEvent, CaseStage

#: How far ahead of the station's clock a closing date may be (a client's clock drifts).
CLOCK_TOLERANCE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Bound:
    """The earliest a case may be recorded as closed, and what sets it."""

    at: datetime
    what: str


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


def closing_floor(case: CaseView, *, events: Iterable[CaseEvent], links: Iterable[LinkView],
                  recordings: dict[str, Recording], stages: Iterable[CaseStage]) -> Bound:
    """The latest of everything the case's record says happened (pure)."""
    bounds = [Bound(case.created_at, "the case was created")]
    bounds += [Bound(ev.at, "the case was reopened") for ev in events
               if ev.case_id == case.id and ev.kind == "reopened"]
    for link in links:
        rec = recordings.get(link.recording_id)
        if link.active and rec is not None:
            began = min(rec.camera_start or rec.ingested_at, rec.ingested_at)
            bounds.append(Bound(began, f"footage {rec.id} linked to it was recorded"))
    bounds += [Bound(min(st.end_at, st.at), f"its stage {st.stage} ended") for st in stages]
    return max(bounds, key=lambda b: b.at)


def check_closing(case: CaseView, closed_at: datetime, *, floor: Bound,
                  now: datetime) -> None:
    """Refuse a closing date before ``floor`` or ahead of ``now`` (+ tolerance)."""
    if closed_at.tzinfo is None or closed_at.utcoffset() is None:
        raise InvalidRequest("a closing date needs a time zone", case=case.number)
    if closed_at > now + CLOCK_TOLERANCE:
        raise InvalidRequest(
            f"case {case.number} cannot be recorded as closed at {_utc(closed_at)}: that "
            f"is after the station's clock ({_utc(now)})", case=case.number,
            closed_at=closed_at, latest=now + CLOCK_TOLERANCE)
    if closed_at < floor.at:
        raise InvalidRequest(
            f"case {case.number} cannot be recorded as closed at {_utc(closed_at)}: "
            f"{floor.what} at {_utc(floor.at)}, and a case never closes before that",
            case=case.number, closed_at=closed_at, earliest=floor.at, because=floor.what)


__all__ = ["CLOCK_TOLERANCE", "Bound", "check_closing", "closing_floor"]
