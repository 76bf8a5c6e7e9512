"""What an export request takes: its items, each a range of one recording.

A recording request is one item (its range, or the whole rendition; a photo whole); a
case request is every link active when it was made (footage by its range, photos and
other files whole), and the links that cannot be packaged yet are named as skipped.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from archive.catalog import Catalog, Recording
from archive.catalog.models import Rendition, Segment
from integrity.errors import InvalidRequest, NotFound
from records.casebook import Casebook
from records.exportbook import ExportItem
from records.originals import NO_RENDITION
from records.package import parse_offset


def _span(catalog: Catalog, recording_id: str) -> tuple[Recording, int | None]:
    """The recording and the end of its rendition (None: no rendition to package)."""
    with Session(catalog.engine) as s:
        rec = s.get(Recording, recording_id)
        if rec is None:
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        rend = s.exec(select(Rendition).where(Rendition.recording_id == recording_id,
                                              Rendition.status == "ok")).first()
        last = None if rend is None else s.exec(
            select(Segment).where(Segment.rendition_id == rend.id)
            .order_by(col(Segment.index).desc())).first()
    return rec, None if last is None else last.end_us

def recording_item(catalog: Catalog, recording_id: str, start: str | None,
                   end: str | None) -> ExportItem:
    rec, whole = _span(catalog, recording_id)
    if whole is None and rec.kind in NO_RENDITION:  # a photo leaves whole, as archived
        if start is not None or end is not None:
            raise InvalidRequest(f"recording {recording_id} is a {rec.kind}: it has no "
                                 "time range; leave out --start and --end",
                                 recording=recording_id)
        return ExportItem(recording_id, 0, 0)
    if whole is None:
        raise NotFound(f"recording {recording_id} has no rendition to export; run "
                       "`evidock process`", recording=recording_id)
    start_us = 0 if start is None else parse_offset(start, rec.camera_start)
    end_us = whole if end is None else parse_offset(end, rec.camera_start)
    if not 0 <= start_us < min(end_us, whole):
        raise InvalidRequest(f"the range [{start}, {end}) is not inside recording "
                             f"{recording_id} (0 to {whole / 1e6:.3f} s) or is empty",
                             start_us=start_us, end_us=end_us, recording=recording_id)
    return ExportItem(recording_id, start_us, end_us)

def case_items(catalog: Catalog, book: Casebook, case_id: str, *,
               made_at: datetime | None) -> tuple[list[ExportItem], list[str]]:
    """Links active now (and made by ``made_at``): footage by its range, photos and
    other files whole; video or audio not yet processed is skipped."""
    items: list[ExportItem] = []
    skipped: list[str] = []
    for link in book.links(case_id=case_id):
        if not link.active or (made_at is not None and link.at > made_at):
            continue
        rec, whole = _span(catalog, link.recording_id)
        if whole is None and rec.kind in NO_RENDITION:
            items.append(ExportItem(link.recording_id, 0, 0, link.id))
            continue
        if whole is None:
            skipped.append(f"link {link.id}: recording {link.recording_id} has no "
                           "rendition yet (run `evidock process`)")
            continue
        items.append(ExportItem(link.recording_id, link.start_us or 0,
                                whole if link.end_us is None else link.end_us, link.id))
    return items, skipped
