"""Coverage inputs from the catalog, and the permission-checked, audited coverage run.

:func:`load_facts` turns the rows of some cases (active links only, declared stage
windows, recordings, offload sessions, renditions) into the frozen inputs of
:func:`retention.coverage.report`. Times: footage starts at the recording's camera start
plus the link's ``start_us``; it ends at the link's ``end_us`` or, for a whole recording,
at its duration — the end of the last segment of its newest ``ok`` rendition, else that
rendition's probed duration, else unknown. A link range is clipped to the duration. A
recording was offloaded when its dock session began (else when it was ingested).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from archive.catalog import Catalog, DockSession, Recording
from archive.catalog.models import Rendition, Segment
from config.access import CoverageSettings
from integrity.errors import InvalidRequest
from records.applicability import decisions, in_force
from records.casebook import Casebook, CaseView, LinkView, fold_links
from records.coverage import (
    CaseFacts,
    CoverageReport,
    DeclaredStage,
    LinkFacts,
    StageDecision,
    report,
)
from records.labels import hidden_recordings
from records.models import CaseLink, CaseStage
from records.permissions import Actor, Gate, P

M = TypeVar("M", bound=SQLModel)
_CHUNK = 500  # well under SQLite's bound-parameter limit


def _rows_in(s: Session, model: type[M], column: Any, values: Iterable[str]) -> list[M]:
    wanted = sorted(set(values))
    out: list[M] = []
    for i in range(0, len(wanted), _CHUNK):
        out.extend(s.exec(select(model).where(col(column).in_(wanted[i:i + _CHUNK]))).all())
    return out


def link_facts(link: LinkView, rec: Recording, *, offloaded_at: datetime,
               duration_us: int | None) -> LinkFacts:
    """A link as absolute times; unknown camera time or duration stays None."""
    start = end = None
    if rec.camera_start is not None:
        offset = link.start_us or 0
        stop = link.end_us if link.end_us is not None else duration_us
        if stop is not None and duration_us is not None:
            stop = min(stop, duration_us)
        start = rec.camera_start + timedelta(microseconds=offset)
        if stop is not None:
            end = rec.camera_start + timedelta(microseconds=max(stop, offset))
    return LinkFacts(recording_id=rec.id, stage=link.stage, start=start, end=end,
                     officer_id=rec.officer_id, recorded_at=rec.camera_start,
                     offloaded_at=offloaded_at, kind=rec.kind)


def _durations(s: Session, recording_ids: Sequence[str]) -> dict[str, int]:
    """Recording → duration (µs) from its newest ok rendition, where one is known."""
    newest: dict[str, Rendition] = {}
    for r in _rows_in(s, Rendition, Rendition.recording_id, recording_ids):
        old = newest.get(r.recording_id)
        if r.status == "ok" and (old is None or (r.created_at, r.id) > (old.created_at, old.id)):
            newest[r.recording_id] = r
    ids = [r.id for r in newest.values()]
    ends: dict[str, int] = {}
    for i in range(0, len(ids), _CHUNK):
        query = (select(Segment.rendition_id, func.max(Segment.end_us))
                 .where(col(Segment.rendition_id).in_(ids[i:i + _CHUNK]))
                 .group_by(col(Segment.rendition_id)))
        ends.update({rid: int(end) for rid, end in s.exec(query).all() if end is not None})
    out: dict[str, int] = {}
    for rec_id, r in newest.items():
        probed = r.media.get("duration_s")
        if r.id in ends:
            out[rec_id] = ends[r.id]
        elif isinstance(probed, int | float) and probed > 0:
            out[rec_id] = round(probed * 1e6)
    return out


def load_facts(catalog: Catalog, cases: Sequence[CaseView], *,
               hide: Collection[str] = frozenset()) -> tuple[CaseFacts, ...]:
    """The coverage inputs of ``cases`` (removed links are left out, and links to the
    recordings in ``hide``: footage the reader may not see)."""
    ids = [c.id for c in cases]
    with Session(catalog.engine) as s:
        links = [v for v in fold_links(_rows_in(s, CaseLink, CaseLink.case_id, ids))
                 if v.active and v.recording_id not in hide]
        stages = _rows_in(s, CaseStage, CaseStage.case_id, ids)
        recs = {r.id: r for r in _rows_in(s, Recording, Recording.id,
                                          (v.recording_id for v in links))}
        started = {d.id: d.started_at for d in _rows_in(
            s, DockSession, DockSession.id, (r.session_id for r in recs.values()))}
        durations = _durations(s, sorted(recs))
    facts: dict[str, list[LinkFacts]] = {c: [] for c in ids}
    for v in links:
        rec = recs[v.recording_id]
        facts[v.case_id].append(link_facts(
            v, rec, offloaded_at=started.get(rec.session_id) or rec.ingested_at,
            duration_us=durations.get(rec.id)))
    declared: dict[str, list[DeclaredStage]] = {c: [] for c in ids}
    for st in sorted(stages, key=lambda x: x.id or 0):
        declared[st.case_id].append(DeclaredStage(st.stage, st.start_at, st.end_at))
    decided = {c: tuple(StageDecision(stage=d.stage, applicable=d.applicable, reason=d.reason,
                                      actor=d.actor, at=d.at)
                        for d in in_force(history).values())
               for c, history in decisions(catalog, ids).items()}
    return tuple(CaseFacts(case_id=c.id, number=c.number, case_type=c.case_type, unit=c.unit,
                           status=c.status, declared=tuple(declared[c.id]),
                           links=tuple(facts[c.id]), decisions=decided.get(c.id, ()))
                 for c in cases)


def in_scope(case: CaseView, *, unit: str | None, since: datetime | None) -> bool:
    """Of ``unit`` (None: any) and created or active (open, or closed) since ``since``."""
    if unit is not None and case.unit != unit:
        return False
    if since is None:
        return True
    return (case.created_at >= since or case.status == "open"
            or (case.closed_at is not None and case.closed_at >= since))


class CoverageDesk:
    """Checks the reader, picks the cases they may see, loads, reports, audits the read."""

    def __init__(self, *, catalog: Catalog, gate: Gate, settings: CoverageSettings,
                 clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.settings, self.clock = catalog, gate, settings, clock
        self.book = Casebook(catalog=catalog)

    def _cases(self, actor: Actor, *, number: str | None, unit: str | None,
               since: datetime | None) -> tuple[list[CaseView], int]:
        if number is None:
            wanted = [c for c in self.book.cases() if in_scope(c, unit=unit, since=since)]
            seen = [c for c in wanted if actor.sees(unit=c.unit, sensitivity=c.sensitivity)]
            return seen, len(wanted) - len(seen)
        if unit is not None or since is not None:
            raise InvalidRequest("name one case, or select cases by unit and/or since",
                                 case=number)
        case = self.book.case(number)
        self.gate.require(actor, P.COVERAGE_VIEW, subjects=[f"case:{case.id}"],
                          unit=case.unit, sensitivity=case.sensitivity)
        return [case], 0

    def run(self, actor: Actor, *, number: str | None = None, unit: str | None = None,
            since: datetime | None = None) -> CoverageReport:
        """The report on one case (refused if hidden) or on the visible cases in scope."""
        if since is not None and since.utcoffset() is None:
            raise InvalidRequest("since must be timezone-aware", since=since.isoformat())
        scope = [f"case-number:{number}"] if number else ([f"unit:{unit}"] if unit else [])
        self.gate.require(actor, P.COVERAGE_VIEW, subjects=scope)
        cases, hidden = self._cases(actor, number=number, unit=unit, since=since)
        # A recording linked here may be secret through another case: counted, not shown.
        wanted = {c.id for c in cases}
        # One case: its own links only (every link of the catalog is 100,000s of rows).
        links = self.book.links(case_id=cases[0].id) if number is not None \
            else self.book.links()
        unseen = hidden_recordings(self.book, actor, {
            x.recording_id for x in links if x.active and x.case_id in wanted},
            labels_only=True)
        result = report(load_facts(self.catalog, cases, hide=frozenset(unseen)),
                        settings=self.settings, now=self.clock(), hidden=hidden,
                        hidden_recordings=len(unseen))
        total = result.total
        self.gate.read(actor, "coverage", [f"case:{c.id}" for c in cases], {
            "case": number, "unit": unit, "since": None if since is None else since.isoformat(),
            "hidden": hidden, "hidden_recordings": len(unseen), "missing": total.missing,
            "gaps": total.gaps, "gap_stages": total.gap_stages,
            "not_applicable": total.not_applicable, "late": total.late})
        return result


__all__ = ["CoverageDesk", "in_scope", "link_facts", "load_facts"]
