"""Reading case records: the append-only rows folded into current state.

Pure folds (:func:`fold_case`, :func:`fold_links`) turn rows into frozen views; the
:class:`Casebook` only loads rows. Writing lives in :mod:`retention.cases`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from archive.bindings import vouched_if
from archive.catalog import Catalog, Recording
from integrity.errors import NotFound
from records.models import Case, CaseAttachment, CaseEvent, CaseLink, CaseStage


@dataclass(frozen=True, slots=True)
class CaseView:
    id: str
    number: str
    case_type: str
    unit: str
    title: str
    sensitivity: str
    status: str  # open | closed
    closed_at: datetime | None
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "number": self.number, "type": self.case_type,
                "unit": self.unit, "title": self.title, "sensitivity": self.sensitivity,
                "status": self.status, "closed_at": _iso(self.closed_at),
                "created_by": self.created_by, "created_at": _iso(self.created_at)}


@dataclass(frozen=True, slots=True)
class Removal:
    link_id: int  # the unlink row
    actor: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class LinkView:
    id: int
    case_id: str
    recording_id: str
    stage: str
    start_us: int | None  # None: from the start of the recording
    end_us: int | None  # None: to its end
    actor: str
    reason: str
    at: datetime
    removed: Removal | None

    @property
    def active(self) -> bool:
        return self.removed is None

    def to_json(self) -> dict[str, object]:
        removed = None if self.removed is None else {
            "by": self.removed.actor, "reason": self.removed.reason,
            "at": _iso(self.removed.at), "unlink_id": self.removed.link_id}
        return {"id": self.id, "case_id": self.case_id, "recording_id": self.recording_id,
                "stage": self.stage, "start_us": self.start_us, "end_us": self.end_us,
                "linked_by": self.actor, "reason": self.reason, "at": _iso(self.at),
                "active": self.active, "removed": removed}


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def believed_events(s: Session, events: Iterable[CaseEvent]) -> list[CaseEvent]:
    """A closing or a label change no audit event vouches for (written into the catalog
    directly) is not believed: a forged closing would free footage early, a forged
    downgrade show a secret case to the uncleared."""
    return vouched_if(s, events, lambda e: e.kind in ("closed", "sensitivity"))


def believed_links(s: Session, rows: Iterable[CaseLink]) -> list[CaseLink]:
    """A link's removal counts only when its audit event vouches for it."""
    return vouched_if(s, rows, lambda r: r.action == "unlink")


def fold_case(case: Case, events: Iterable[CaseEvent]) -> CaseView:
    """The case as its events (in id order) leave it."""
    status, closed_at, sensitivity = "open", None, case.sensitivity
    for ev in sorted(events, key=lambda e: e.id or 0):
        if ev.kind == "closed":
            status, closed_at = "closed", ev.effective_at
        elif ev.kind == "reopened":
            status, closed_at = "open", None
        elif ev.kind == "sensitivity":
            sensitivity = ev.value
    return CaseView(id=case.id, number=case.number, case_type=case.case_type, unit=case.unit,
                    title=case.title, sensitivity=sensitivity, status=status,
                    closed_at=closed_at, created_by=case.created_by,
                    created_at=case.created_at)


def fold_links(rows: Iterable[CaseLink]) -> list[LinkView]:
    """Every link row with its removal (if an unlink row names it), in id order."""
    ordered = sorted(rows, key=lambda r: r.id or 0)
    removals = {r.unlinks: Removal(link_id=r.id or 0, actor=r.actor, reason=r.reason,
                                   at=r.at)
                for r in ordered if r.action == "unlink" and r.unlinks is not None}
    return [LinkView(id=r.id or 0, case_id=r.case_id, recording_id=r.recording_id,
                     stage=r.stage, start_us=r.start_us, end_us=r.end_us, actor=r.actor,
                     reason=r.reason, at=r.at, removed=removals.get(r.id or 0))
            for r in ordered if r.action == "link"]


def _subject(subject: str) -> tuple[str, str]:
    """(kind, key) of an audit subject; a bare id may be a recording's (the offload's
    events name session, recording and blob by their ids alone)."""
    kind, sep, key = subject.partition(":")
    return (kind, key) if sep else ("recording", subject)


class Casebook:
    def __init__(self, *, catalog: Catalog) -> None:
        self.catalog = catalog

    def case(self, key: str) -> CaseView:
        """A case by number (as written) or id."""
        with Session(self.catalog.engine) as s:
            row = s.exec(select(Case).where(Case.number == key)).first() or s.get(Case, key)
            if row is None:
                raise NotFound(f"no case {key}", case=key)
            events = believed_events(s, s.exec(
                select(CaseEvent).where(CaseEvent.case_id == row.id)))
        return fold_case(row, events)

    def cases(self, ids: Iterable[str] | None = None) -> list[CaseView]:
        """Every case, or only those of ``ids`` (folding and vouching every case's events
        costs seconds at 10⁴ cases: ask for the few you need)."""
        # Ties on created_at ordered by id, as the desk's SQL pages order them.
        rows_q = select(Case).order_by(col(Case.created_at), col(Case.id))
        events_q = select(CaseEvent)
        if ids is not None:
            wanted = list(set(ids))
            rows_q = rows_q.where(col(Case.id).in_(wanted))
            events_q = events_q.where(col(CaseEvent.case_id).in_(wanted))
        with Session(self.catalog.engine) as s:
            rows = s.exec(rows_q).all()
            events = believed_events(s, s.exec(events_q))
        by_case: dict[str, list[CaseEvent]] = {}
        for ev in events:
            by_case.setdefault(ev.case_id, []).append(ev)
        return [fold_case(r, by_case.get(r.id, [])) for r in rows]

    def links(self, *, case_id: str | None = None, recording_ids: Sequence[str] | None = None,
              ) -> list[LinkView]:
        """Links (active and removed) of one case and/or some recordings."""
        query = select(CaseLink)
        if case_id is not None:
            query = query.where(CaseLink.case_id == case_id)
        if recording_ids is not None:
            query = query.where(col(CaseLink.recording_id).in_(list(recording_ids)))
        with Session(self.catalog.engine) as s:
            return fold_links(believed_links(s, s.exec(query)))

    def stages(self, case_id: str) -> list[CaseStage]:
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(CaseStage).where(CaseStage.case_id == case_id)
                               .order_by(col(CaseStage.id))))

    def attachments(self, case_id: str) -> list[CaseAttachment]:
        with Session(self.catalog.engine) as s:
            return list(s.exec(select(CaseAttachment).where(CaseAttachment.case_id == case_id)
                               .order_by(col(CaseAttachment.id))))

    def recordings(self, ids: Iterable[str]) -> dict[str, Recording]:
        wanted = list(set(ids))
        with Session(self.catalog.engine) as s:
            rows = s.exec(select(Recording).where(col(Recording.id).in_(wanted))).all()
        return {r.id: r for r in rows}

    def sensitivity_of_recordings(self, ids: Iterable[str]) -> dict[str, tuple[CaseView, ...]]:
        """For each recording, the cases it is actively linked to (for access checks)."""
        wanted = list(set(ids))
        links = [x for x in self.links(recording_ids=wanted) if x.active]
        cases = {c.id: c for c in self.cases({x.case_id for x in links})}
        out: dict[str, list[CaseView]] = {r: [] for r in wanted}
        for link in links:
            if cases[link.case_id] not in out[link.recording_id]:
                out[link.recording_id].append(cases[link.case_id])
        return {r: tuple(v) for r, v in out.items()}

    def governing(self, subjects: Iterable[str]) -> tuple[CaseView, ...]:
        """The cases whose unit and label govern the records ``subjects`` name, as audit
        events name them: ``case:ID``, ``case-number:N`` and ``recording:ID`` (the cases
        it is actively linked to now; the offload names it by its bare id). Other subjects
        (holds, requests, blobs) are always named next to their case or recording, so they
        add nothing here."""
        return self.governing_each([subjects])[0]

    def governing_each(self, lists: Sequence[Iterable[str]]) -> list[tuple[CaseView, ...]]:
        """:meth:`governing` of each list of subjects (one load of the cases and links
        they name: an audit page names a few dozen of the 10⁴ cases)."""
        parsed = [[_subject(x) for x in subjects] for subjects in lists]
        keys = {kind: {k for pairs in parsed for c, k in pairs if c == kind}
                for kind in ("case", "case-number", "recording")}
        links = [x for x in self.links(recording_ids=sorted(keys["recording"]))
                 if x.active] if keys["recording"] else []
        with Session(self.catalog.engine) as s:
            named = set(s.exec(select(Case.id).where(
                col(Case.number).in_(sorted(keys["case-number"]))))) \
                if keys["case-number"] else set()
        cases = {c.id: c for c in self.cases(keys["case"] | named
                                             | {x.case_id for x in links})}
        numbers = {c.number: c for c in cases.values()}
        linked: dict[str, list[CaseView]] = {}
        for link in links:
            linked.setdefault(link.recording_id, []).append(cases[link.case_id])
        out: list[tuple[CaseView, ...]] = []
        for pairs in parsed:
            found: dict[str, CaseView] = {}
            for kind, key in pairs:
                case = (cases.get(key) if kind == "case"
                        else numbers.get(key) if kind == "case-number" else None)
                for c in ([case] if case is not None else
                          linked.get(key, []) if kind == "recording" else []):
                    found[c.id] = c
            out.append(tuple(found.values()))
        return out

__all__ = ["CaseView", "Casebook", "LinkView", "Removal", "fold_case", "fold_links"]
