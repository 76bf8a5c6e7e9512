"""Reading case records for people: a case's dossier, the case list, finding footage.

Every read passes the gate and is audited. What the actor may not see (another unit's
cases, labels beyond their clearance, recordings linked to such cases) is left out
without a word to the caller; the audit event counts what was shown and what was not.

A recording has no label of its own: it is as sensitive as the strictest case it is
actively linked to, and an actor sees it only if they may see every one of those cases.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, col, select

from archive.bindings import vouched_if
from archive.catalog import Catalog, Recording
from integrity.errors import InvalidRequest
from records.casebook import Casebook, CaseView, LinkView
from records.models import CaseAttachment, Export, ExportRequest, RecordingMark
from records.parties_shown import PartyShown, current_parties
from records.permissions import Actor, Gate, P, strictest
from records.reviews import ReviewView, load_reviews

STATUSES = ("open", "closed")


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


# ---------------------------------------------------------------------- marks


def fold_marks(rows: Iterable[RecordingMark]) -> tuple[frozenset[str], str | None]:
    """The marks a recording carries and its category, folding its rows in id order."""
    marks: set[str] = set()
    category: str | None = None
    for row in sorted(rows, key=lambda r: r.id or 0):
        if row.kind == "category":
            category = row.value
        elif row.kind == "mark" and row.action == "remove":
            marks.discard(row.value)
        elif row.kind == "mark":
            marks.add(row.value)
    return frozenset(marks), category


@dataclass(frozen=True, slots=True)
class MarkState:
    recording_id: str
    marks: frozenset[str]
    category: str | None

    def to_json(self) -> dict[str, object]:
        return {"recording_id": self.recording_id, "marks": sorted(self.marks),
                "category": self.category}


def believed_marks(s: Session, rows: Iterable[RecordingMark]) -> list[RecordingMark]:
    """A mark's removal or a category counts only when its audit event vouches for it
    (a forged one would let footage go sooner)."""
    return vouched_if(s, rows, lambda r: r.kind == "category" or r.action == "remove")


def load_marks(catalog: Catalog, ids: Iterable[str]) -> dict[str, MarkState]:
    """The folded marks of each of ``ids`` (recordings without rows: none)."""
    wanted = list(dict.fromkeys(ids))
    by_rec: dict[str, list[RecordingMark]] = {r: [] for r in wanted}
    with Session(catalog.engine) as s:
        for row in believed_marks(s, s.exec(select(RecordingMark).where(
                col(RecordingMark.recording_id).in_(wanted)))):
            by_rec[row.recording_id].append(row)
    return {r: MarkState(r, *fold_marks(rows)) for r, rows in by_rec.items()}


# ---------------------------------------------------------------------- visibility


def recording_visible(actor: Actor, cases: Iterable[CaseView]) -> bool:
    """May ``actor`` see a recording actively linked to ``cases`` (maybe none)?"""
    return actor.may(P.RECORDING_VIEW) and all(
        actor.sees(unit=c.unit, sensitivity=c.sensitivity) for c in cases)


def require_recording(gate: Gate, actor: Actor, permission: P, recording_id: str,
                      cases: Sequence[CaseView]) -> None:
    """Pass, or audit the refusal and raise Forbidden, for an act on one recording."""
    subjects = [f"recording:{recording_id}"]
    gate.require(actor, permission, subjects=subjects)
    for case in cases:  # the unit and label of every linked case must be visible
        gate.require(actor, permission, subjects=[*subjects, f"case:{case.id}"],
                     unit=case.unit, sensitivity=case.sensitivity)


# ---------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class RecordingSummary:
    id: str
    name: str
    device: str
    officer: str | None
    camera_start: datetime | None
    ingested_at: datetime
    kind: str
    size: int
    blake3: str
    status: str  # ingested | flagged
    flags: tuple[str, ...]
    marks: frozenset[str]
    category: str | None

    @classmethod
    def of(cls, rec: Recording, marks: MarkState | None) -> RecordingSummary:
        return cls(id=rec.id, name=rec.original_display, device=rec.device_serial,
                   officer=rec.officer_id, camera_start=rec.camera_start,
                   ingested_at=rec.ingested_at, kind=rec.kind, size=rec.size,
                   blake3=rec.blake3, status=rec.status, flags=tuple(rec.flags),
                   marks=marks.marks if marks else frozenset(),
                   category=marks.category if marks else None)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "device": self.device,
                "officer": self.officer, "camera_start": _iso(self.camera_start),
                "ingested_at": _iso(self.ingested_at), "kind": self.kind, "size": self.size,
                "blake3": self.blake3, "status": self.status, "flags": list(self.flags),
                "marks": sorted(self.marks), "category": self.category}


@dataclass(frozen=True, slots=True)
class StageView:
    stage: str
    start_at: datetime
    end_at: datetime
    actor: str
    note: str
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"stage": self.stage, "start_at": _iso(self.start_at),
                "end_at": _iso(self.end_at), "by": self.actor, "note": self.note,
                "at": _iso(self.at)}


@dataclass(frozen=True, slots=True)
class AttachmentView:
    id: int
    filename: str
    description: str
    size: int
    blake3: str
    sha256: str
    actor: str
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "filename": self.filename, "description": self.description,
                "size": self.size, "blake3": self.blake3, "sha256": self.sha256,
                "by": self.actor, "at": _iso(self.at)}


def attachment_view(row: CaseAttachment) -> AttachmentView:
    return AttachmentView(id=row.id or 0, filename=row.filename, description=row.description,
                          size=row.size, blake3=row.blake3, sha256=row.sha256,
                          actor=row.actor, at=row.at)


@dataclass(frozen=True, slots=True)
class ExportView:
    id: str
    recording_id: str
    request_id: str | None
    start_us: int
    end_us: int
    destination: str
    actor: str
    purpose: str
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "recording_id": self.recording_id,
                "request_id": self.request_id, "start_us": self.start_us,
                "end_us": self.end_us, "destination": self.destination, "by": self.actor,
                "purpose": self.purpose, "at": _iso(self.at)}


@dataclass(frozen=True, slots=True)
class CaseDossier:
    """One case as a reader sees it; ``links`` keeps removed links (the history)."""

    case: CaseView
    links: tuple[LinkView, ...]
    recordings: tuple[RecordingSummary, ...]
    hidden_recordings: int  # linked, but beyond the reader's units or clearance
    stages: tuple[StageView, ...]
    attachments: tuple[AttachmentView, ...]
    exports: tuple[ExportView, ...]
    generated_at: datetime
    # the recordings behind ``hidden_recordings``: their links say so ("hidden")
    hidden_ids: frozenset[str] = frozenset()
    # review decisions (法制审核), oldest first: the last is in force (records/reviews.py)
    reviews: tuple[ReviewView, ...] = ()
    # current parties, ID numbers masked; None: the reader lacks party.view (no key)
    parties: tuple[PartyShown, ...] | None = None

    def to_json(self) -> dict[str, object]:
        return {"case": self.case.to_json(),
                "links": [{**x.to_json(), "hidden": x.recording_id in self.hidden_ids}
                          for x in self.links],
                "recordings": [x.to_json() for x in self.recordings],
                "hidden_recordings": self.hidden_recordings,
                "stages": [x.to_json() for x in self.stages],
                "attachments": [x.to_json() for x in self.attachments],
                "exports": [x.to_json() for x in self.exports],
                "reviews": [x.to_json() for x in self.reviews],
                **({} if self.parties is None else
                   {"parties": [x.to_json() for x in self.parties]}),
                "generated_at": _iso(self.generated_at)}


@dataclass(frozen=True, slots=True)
class FoundLink:
    link_id: int
    case_id: str
    case_number: str
    stage: str
    start_us: int | None
    end_us: int | None

    def to_json(self) -> dict[str, object]:
        return {"link_id": self.link_id, "case_id": self.case_id, "case": self.case_number,
                "stage": self.stage, "start_us": self.start_us, "end_us": self.end_us}


@dataclass(frozen=True, slots=True)
class Found:
    """A recording that matched, with its active links."""

    recording: RecordingSummary
    links: tuple[FoundLink, ...]
    sensitivity: str  # the strictest label of the linked cases

    def to_json(self) -> dict[str, object]:
        return {"recording": self.recording.to_json(), "sensitivity": self.sensitivity,
                "links": [x.to_json() for x in self.links]}


@dataclass(frozen=True, slots=True)
class FindQuery:
    case: str | None = None
    officer: str | None = None
    device: str | None = None
    unit: str | None = None
    stage: str | None = None
    since: datetime | None = None  # inclusive, on camera_start (else ingested_at)
    until: datetime | None = None  # exclusive

    def to_json(self) -> dict[str, object]:
        return {"case": self.case, "officer": self.officer, "device": self.device,
                "unit": self.unit, "stage": self.stage, "since": _iso(self.since),
                "until": _iso(self.until)}

    def check(self) -> None:
        for name, when in (("since", self.since), ("until", self.until)):
            if when is not None and when.tzinfo is None:
                raise InvalidRequest(f"--{name} needs a time zone", **{name: str(when)})
        if self.since and self.until and self.until <= self.since:
            raise InvalidRequest("the window's end must come after its start",
                                 since=_iso(self.since), until=_iso(self.until))

    def by_link(self) -> bool:
        return any(x is not None for x in (self.case, self.unit, self.stage))


# ---------------------------------------------------------------------- reader


class Dossier:
    def __init__(self, *, catalog: Catalog, gate: Gate, clock: Callable[[], datetime]) -> None:
        self.catalog, self.gate, self.clock = catalog, gate, clock
        self.book = Casebook(catalog=catalog)

    def show(self, actor: Actor, key: str) -> CaseDossier:
        """Everything about one case, by number or id (refused and audited if hidden)."""
        case = self.book.case(key)
        subjects = [f"case:{case.id}"]
        self.gate.require(actor, P.CASE_VIEW, subjects=subjects, unit=case.unit,
                          sensitivity=case.sensitivity)
        links = self.book.links(case_id=case.id)
        ids = list(dict.fromkeys(x.recording_id for x in links))
        shown = self._visible(actor, ids)
        dossier = CaseDossier(
            case=case, links=tuple(links), recordings=shown,
            hidden_recordings=len(ids) - len(shown),
            stages=tuple(StageView(stage=x.stage, start_at=x.start_at, end_at=x.end_at,
                                   actor=x.actor, note=x.note, at=x.at)
                         for x in self.book.stages(case.id)),
            attachments=tuple(attachment_view(x) for x in self.book.attachments(case.id)),
            exports=self._exports(case.id), generated_at=self.clock(),
            hidden_ids=frozenset(ids) - {r.id for r in shown},
            reviews=load_reviews(self.catalog, case.id),
            # the case is visible (required above); parties need party.view besides
            parties=current_parties(self.catalog, case.id) if actor.may(P.PARTY_VIEW)
            else None)
        self.gate.read(actor, "case.show", [*subjects, *(f"recording:{r.id}" for r in shown)],
                       {"number": case.number, "recordings": len(shown),
                        "hidden": dossier.hidden_recordings,
                        "parties": None if dossier.parties is None else len(dossier.parties)})
        return dossier

    def _visible(self, actor: Actor, ids: Sequence[str]) -> tuple[RecordingSummary, ...]:
        rows = self.book.recordings(ids)
        cases = self.book.sensitivity_of_recordings(ids)
        marks = load_marks(self.catalog, ids)
        return tuple(RecordingSummary.of(rows[i], marks.get(i)) for i in ids
                     if i in rows and recording_visible(actor, cases[i]))

    def _exports(self, case_id: str) -> tuple[ExportView, ...]:
        with Session(self.catalog.engine) as s:
            requests = list(s.exec(select(ExportRequest.id)
                                   .where(ExportRequest.case_id == case_id)))
            if not requests:
                return ()
            rows = s.exec(select(Export).where(col(Export.request_id).in_(requests))
                          .order_by(col(Export.created_at), col(Export.id))).all()
        return tuple(ExportView(id=x.id, recording_id=x.recording_id,
                                request_id=x.request_id, start_us=x.start_us,
                                end_us=x.end_us, destination=x.destination, actor=x.actor,
                                purpose=x.purpose, at=x.created_at) for x in rows)

    def find(self, actor: Actor, *, case: str | None = None, officer: str | None = None,
             device: str | None = None, unit: str | None = None, stage: str | None = None,
             since: datetime | None = None, until: datetime | None = None,
             ) -> builtins.list[Found]:
        """Recordings matching every given filter that the actor may see.

        case, unit and stage must hold for one and the same active link; the window
        [since, until) is on the camera's start time, or the ingest time when the camera
        gave none.
        """
        return self._find(actor, FindQuery(case=case, officer=officer, device=device,
                                           unit=unit, stage=stage, since=since, until=until))

    def _find(self, actor: Actor, query: FindQuery) -> builtins.list[Found]:
        query.check()
        self.gate.require(actor, P.CASE_VIEW)
        case_id = None
        if query.case is not None:
            wanted = self.book.case(query.case)
            self.gate.require(actor, P.CASE_VIEW, subjects=[f"case:{wanted.id}"],
                              unit=wanted.unit, sensitivity=wanted.sensitivity)
            case_id = wanted.id
        cases = {c.id: c for c in self.book.cases()}
        by_rec: dict[str, builtins.list[LinkView]] = {}
        for link in self.book.links():
            if link.active:
                by_rec.setdefault(link.recording_id, []).append(link)
        candidates = None
        if query.by_link():
            candidates = {r for r, links in by_rec.items() if any(
                _link_matches(x, cases[x.case_id], case_id, query) for x in links)}
        rows = self._recordings(query, candidates)
        shown = [r for r in rows if recording_visible(
            actor, [cases[x.case_id] for x in by_rec.get(r.id, [])])]
        found = self._found(shown, by_rec, cases)
        self.gate.read(actor, "case.find", [f"recording:{f.recording.id}" for f in found],
                       {"filters": query.to_json(), "shown": len(found),
                        "hidden": len(rows) - len(found)})
        return found

    def _recordings(self, query: FindQuery, candidates: set[str] | None,
                    ) -> builtins.list[Recording]:
        if candidates is not None and not candidates:
            return []
        when = func.coalesce(Recording.camera_start, Recording.ingested_at)
        stmt = select(Recording)
        if candidates is not None:
            stmt = stmt.where(col(Recording.id).in_(sorted(candidates)))
        if query.officer is not None:
            stmt = stmt.where(Recording.officer_id == query.officer)
        if query.device is not None:
            stmt = stmt.where(Recording.device_serial == query.device)
        if query.since is not None:
            stmt = stmt.where(when >= query.since)
        if query.until is not None:
            stmt = stmt.where(when < query.until)
        with Session(self.catalog.engine) as s:
            return list(s.exec(stmt.order_by(when, col(Recording.id))))

    def _found(self, rows: Sequence[Recording], by_rec: dict[str, builtins.list[LinkView]],
               cases: dict[str, CaseView]) -> builtins.list[Found]:
        marks = load_marks(self.catalog, [r.id for r in rows])
        return [Found(recording=RecordingSummary.of(r, marks.get(r.id)),
                      links=tuple(FoundLink(link_id=x.id, case_id=x.case_id,
                                            case_number=cases[x.case_id].number,
                                            stage=x.stage, start_us=x.start_us,
                                            end_us=x.end_us)
                                  for x in by_rec.get(r.id, [])),
                      sensitivity=strictest(cases[x.case_id].sensitivity
                                            for x in by_rec.get(r.id, [])))
                for r in rows]

    def list(self, actor: Actor, *, unit: str | None = None, status: str | None = None,
             case_type: str | None = None) -> builtins.list[CaseView]:
        """The cases matching the filters that the actor may see (oldest first)."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"unknown status {status!r}; one of {list(STATUSES)}",
                                 status=status)
        self.gate.require(actor, P.CASE_VIEW)
        wanted = [c for c in self.book.cases()
                  if (unit is None or c.unit == unit) and (status is None or c.status == status)
                  and (case_type is None or c.case_type == case_type)]
        shown = [c for c in wanted if actor.sees(unit=c.unit, sensitivity=c.sensitivity)]
        self.gate.read(actor, "case.list", [f"case:{c.id}" for c in shown],
                       {"filters": {"unit": unit, "status": status, "type": case_type},
                        "shown": len(shown), "hidden": len(wanted) - len(shown)})
        return shown


def _link_matches(link: LinkView, case: CaseView, case_id: str | None,
                  query: FindQuery) -> bool:
    return ((case_id is None or link.case_id == case_id)
            and (query.unit is None or case.unit == query.unit)
            and (query.stage is None or link.stage == query.stage))


__all__ = ["AttachmentView", "CaseDossier", "Dossier", "ExportView", "FindQuery", "Found",
           "FoundLink", "MarkState", "RecordingSummary", "StageView", "fold_marks",
           "load_marks", "recording_visible", "require_recording"]
