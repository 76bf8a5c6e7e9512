"""What a reader may open: one recording in full, a segment of its rendition, a case
document.

Same rules as the dossier: a recording is as secret as the strictest case it is
actively linked to, and naming one the reader may not see is refused and audited. Every
opening is an audit event before a byte leaves, naming exactly what was opened (for a
segment, the byte range asked for). The caller gets the blob's catalog facts and its
path in the store; it streams the bytes and checks them against those facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, col, select

from archive.catalog import Catalog
from archive.catalog.models import Rendition, Segment
from archive.store import ContentStore
from integrity.errors import NotFound
from records.casebook import Casebook, CaseView, LinkView
from records.dossier import RecordingSummary, load_marks, require_recording
from records.permissions import Actor, Gate, P, strictest


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


@dataclass(frozen=True, slots=True)
class SegmentView:
    index: int
    name: str
    start_us: int
    end_us: int
    size: int
    blake3: str

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "name": self.name, "start_us": self.start_us,
                "end_us": self.end_us, "size": self.size, "blake3": self.blake3}


@dataclass(frozen=True, slots=True)
class RenditionView:
    """One attempt (append-only rows: a failed one stays next to a later success)."""

    id: str
    status: str
    code: str
    kind: str | None
    container: str | None
    key_id: str | None
    merkle_root: str | None
    manifest_blake3: str | None
    created_at: datetime
    segments: tuple[SegmentView, ...]

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "status": self.status, "code": self.code, "kind": self.kind,
                "container": self.container, "key_id": self.key_id,
                "merkle_root": self.merkle_root, "manifest_blake3": self.manifest_blake3,
                "created_at": _iso(self.created_at),
                "segments": [s.to_json() for s in self.segments]}


@dataclass(frozen=True, slots=True)
class RecordingDetail:
    recording: RecordingSummary
    sensitivity: str  # the strictest label of the actively linked cases
    links: tuple[tuple[LinkView, str], ...]  # every link (removed ones too), case number
    renditions: tuple[RenditionView, ...]  # oldest first

    def to_json(self) -> dict[str, object]:
        return {"recording": self.recording.to_json(), "sensitivity": self.sensitivity,
                "links": [{**x.to_json(), "case": number} for x, number in self.links],
                "renditions": [r.to_json() for r in self.renditions]}


@dataclass(frozen=True, slots=True)
class StoredBytes:
    """A blob to hand out: what the catalog says it is, and where the store keeps it."""

    blake3: str
    size: int
    path: Path
    name: str  # a file name for the reader (segment name, document's filename)
    sha256: str | None = None  # known for documents; segments are named by BLAKE3


#: ``span(size)`` → [first, last) byte offsets to send; raises when it cannot be served.
Span = Callable[[int], tuple[int, int]]


class Viewer:
    def __init__(self, *, catalog: Catalog, store: ContentStore, gate: Gate) -> None:
        self.catalog, self.store, self.gate = catalog, store, gate
        self.book = Casebook(catalog=catalog)

    def _recording(self, actor: Actor, recording_id: str, permission: P,
                   ) -> tuple[RecordingSummary, tuple[CaseView, ...]]:
        rows = self.book.recordings([recording_id])
        if recording_id not in rows:
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        cases = self.book.sensitivity_of_recordings([recording_id])[recording_id]
        require_recording(self.gate, actor, P.RECORDING_VIEW, recording_id, cases)
        if permission is not P.RECORDING_VIEW:
            require_recording(self.gate, actor, permission, recording_id, cases)
        marks = load_marks(self.catalog, [recording_id]).get(recording_id)
        return RecordingSummary.of(rows[recording_id], marks), cases

    def show(self, actor: Actor, recording_id: str) -> RecordingDetail:
        """One recording: its facts, marks, links (with history) and renditions."""
        summary, cases = self._recording(actor, recording_id, P.RECORDING_VIEW)
        rows = self.book.links(recording_ids=[recording_id])
        numbers = {c.id: c.number for c in self.book.cases({x.case_id for x in rows})}
        links = tuple((x, numbers[x.case_id]) for x in rows)
        detail = RecordingDetail(recording=summary,
                                 sensitivity=strictest(c.sensitivity for c in cases),
                                 links=links, renditions=self._renditions(recording_id))
        self.gate.read(actor, "recording.show",
                       [f"recording:{recording_id}", *(f"case:{c.id}" for c in cases)],
                       {"renditions": len(detail.renditions)})
        return detail

    def _renditions(self, recording_id: str) -> tuple[RenditionView, ...]:
        with Session(self.catalog.engine) as s:
            rows = s.exec(select(Rendition).where(Rendition.recording_id == recording_id)
                          .order_by(col(Rendition.created_at), col(Rendition.id))).all()
            segs = s.exec(select(Segment).where(
                col(Segment.rendition_id).in_([r.id for r in rows]))
                .order_by(col(Segment.index))).all()
        by_rendition: dict[str, list[SegmentView]] = {r.id: [] for r in rows}
        for g in segs:
            by_rendition[g.rendition_id].append(SegmentView(
                index=g.index, name=g.name, start_us=g.start_us, end_us=g.end_us,
                size=g.size, blake3=g.blake3))
        return tuple(RenditionView(
            id=r.id, status=r.status, code=r.code, kind=r.kind, container=r.container,
            key_id=r.key_id, merkle_root=r.merkle_root, manifest_blake3=r.manifest_blake3,
            created_at=r.created_at, segments=tuple(by_rendition[r.id])) for r in rows)

    def play(self, actor: Actor, recording_id: str, index: int, *, span: Span,
             rendition_id: str | None = None) -> tuple[StoredBytes, int, int]:
        """A segment of the recording's newest ``ok`` rendition (or of ``rendition_id``),
        with the byte range ``span`` chose; refused unless the actor may play it."""
        self._recording(actor, recording_id, P.RECORDING_PLAY)
        okay = [r for r in self._renditions(recording_id)
                if r.status == "ok" and rendition_id in (None, r.id)]
        if not okay:
            raise NotFound(f"recording {recording_id} has no rendition "
                           f"{rendition_id or 'yet'}; run `evidock process`",
                           recording=recording_id, rendition=rendition_id)
        rendition = okay[-1]
        seg = next((g for g in rendition.segments if g.index == index), None)
        if seg is None:
            raise NotFound(f"rendition {rendition.id} has no segment {index}",
                           recording=recording_id, rendition=rendition.id, segment=index)
        first, last = span(seg.size)
        self.gate.read(actor, "recording.play", [f"recording:{recording_id}",
                                                 f"blob:{seg.blake3}"],
                       {"rendition": rendition.id, "segment": index, "size": seg.size,
                        "range": [first, last]})
        return (StoredBytes(blake3=seg.blake3, size=seg.size, name=seg.name,
                            path=self.store.path_for(seg.blake3)), first, last)

    def document(self, actor: Actor, key: str, digest: str) -> StoredBytes:
        """A document of the case by its BLAKE3 or SHA-256 (as ``case show`` lists them),
        to whoever may view the case."""
        case = self.book.case(key)
        subjects = [f"case:{case.id}"]
        self.gate.require(actor, P.CASE_VIEW, subjects=subjects, unit=case.unit,
                          sensitivity=case.sensitivity)
        wanted = digest.strip().lower()
        row = next((a for a in self.book.attachments(case.id)
                    if wanted in (a.blake3, a.sha256)), None)
        if row is None:
            raise NotFound(f"case {case.number} has no document {digest}",
                           case=case.number, digest=digest)
        self.gate.read(actor, "case.document", [*subjects, f"blob:{row.blake3}"],
                       {"number": case.number, "attachment": row.id,
                        "filename": row.filename, "size": row.size})
        return StoredBytes(blake3=row.blake3, size=row.size, sha256=row.sha256,
                           name=row.filename, path=self.store.path_for(row.blake3))


__all__ = ["RecordingDetail", "RenditionView", "SegmentView", "Span", "StoredBytes",
           "Viewer"]
