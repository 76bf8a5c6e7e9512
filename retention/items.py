"""The planner's input from the catalog: one :class:`~retention.policy.Item` per recording.

Every recording without a ``Tombstone`` (retention has not removed it) is an item; its
marks and category come from its ``RecordingMark`` rows (:func:`retention.dossier.
fold_marks`), its cases from its ACTIVE links (a removed link no longer keeps footage),
each with the case's current status and closing date.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from sqlmodel import Session, col, select

from archive.catalog import Catalog, Recording
from archive.tombstones import tombstoned_recordings
from records.casebook import CaseView, believed_events, believed_links, fold_case, fold_links
from records.dossier import believed_marks, fold_marks
from records.models import Case, CaseEvent, CaseLink, RecordingMark
from retention.policy import CaseRef, Item


def case_ref(case: CaseView) -> CaseRef:
    status: Literal["open", "closed"] = "closed" if case.status == "closed" else "open"
    return CaseRef(case_id=case.id, number=case.number, case_type=case.case_type,
                   status=status, closed_at=case.closed_at)


class ItemSource:
    """Loads planner items (read-only) from the catalog."""

    def __init__(self, *, catalog: Catalog) -> None:
        self.catalog = catalog

    def items(self, *, recording_ids: Collection[str] | None = None,
              session: Session | None = None) -> list[Item]:
        """Items of every live recording (or of those of ``recording_ids`` still live),
        in ingest order, read through ``session`` (the executor's deletion transaction)
        or a read transaction of their own."""
        if session is None:
            with Session(self.catalog.engine) as own:
                return self.items(recording_ids=recording_ids, session=own)
        recordings = _recordings(session, recording_ids)
        # All rows when planning everything: no IN list of every recording id.
        ids = None if recording_ids is None else [r.id for r in recordings]
        marks = _marks(session, ids)
        cases = _cases(session, ids)
        unmarked: tuple[frozenset[str], str | None] = (frozenset(), None)
        return [Item(recording_id=r.id, officer_id=r.officer_id, ingested_at=r.ingested_at,
                     camera_start=r.camera_start, category=marks.get(r.id, unmarked)[1],
                     marks=marks.get(r.id, unmarked)[0], cases=cases.get(r.id, ()))
                for r in recordings]


def _recordings(s: Session, wanted: Collection[str] | None) -> list[Recording]:
    query = select(Recording).order_by(col(Recording.ingested_at), col(Recording.id))
    if wanted is not None:
        query = query.where(col(Recording.id).in_(list(set(wanted))))
    rows = list(s.exec(query))
    gone = tombstoned_recordings(s, None if wanted is None else wanted)
    return [r for r in rows if r.id not in gone]


def _marks(s: Session, ids: list[str] | None,
           ) -> dict[str, tuple[frozenset[str], str | None]]:
    query = select(RecordingMark)
    if ids is not None:
        query = query.where(col(RecordingMark.recording_id).in_(ids))
    rows: dict[str, list[RecordingMark]] = {}
    for row in believed_marks(s, s.exec(query)):
        rows.setdefault(row.recording_id, []).append(row)
    return {i: fold_marks(r) for i, r in rows.items()}


def _cases(s: Session, ids: list[str] | None) -> dict[str, tuple[CaseRef, ...]]:
    query = select(CaseLink)
    if ids is not None:
        query = query.where(col(CaseLink.recording_id).in_(ids))
    links = [v for v in fold_links(believed_links(s, s.exec(query))) if v.active]
    if not links:
        return {}
    wanted = sorted({link.case_id for link in links})
    events: dict[str, list[CaseEvent]] = {}
    for ev in believed_events(s, s.exec(select(CaseEvent).where(
            col(CaseEvent.case_id).in_(wanted)))):
        events.setdefault(ev.case_id, []).append(ev)
    views = {c.id: case_ref(fold_case(c, events.get(c.id, [])))
             for c in s.exec(select(Case).where(col(Case.id).in_(wanted)))}
    out: dict[str, list[CaseRef]] = {}
    for link in links:
        ref = views[link.case_id]
        if ref not in out.setdefault(link.recording_id, []):
            out[link.recording_id].append(ref)
    return {r: tuple(v) for r, v in out.items()}


__all__ = ["ItemSource", "case_ref"]
