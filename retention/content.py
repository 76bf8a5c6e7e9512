"""What retention removes with a recording, and what it must keep because something live
still names it.

A recording's content is its footage (:func:`archive.tombstones.content_of`: original,
rendition manifests and segments, derivatives) and its redacted derivatives' plans,
rendered files, statements and signatures (:func:`records.redactionbook.redaction_content`)
and the desk's stills (:func:`records.footage_thumbs.thumbnail_content`);
the two meet here because archive/ may not import records/. A blob is kept while a live
recording other than the one deleted names it (as footage, through a redaction or a
still), or a case attachment does. A redaction is a derivative, not evidence: it never keeps its
recording, only its own blobs go with it.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, select

from archive.tombstones import content_of, live_references, tombstoned_recordings
from records.footage_thumbs import thumbnail_content, thumbnail_owners
from records.models import CaseAttachment
from records.redactionbook import redaction_content, redaction_owners


def recording_content(s: Session, recording_id: str) -> list[tuple[str, str]]:
    """``(blob, role)`` of everything stored for one recording: its footage (archive)
    and its redacted derivatives' plans, files and statements (records)."""
    first: dict[str, str] = {}
    for b3, role in (content_of(s, recording_id) + redaction_content(s, recording_id)
                     + thumbnail_content(s, recording_id)):
        first.setdefault(b3, role)
    return list(first.items())


def still_named(s: Session, blobs: Collection[str], *, exclude: str | None = None) -> set[str]:
    """Blobs among ``blobs`` something live other than recording ``exclude`` names: a
    live recording (footage or a redaction of it) or a case attachment."""
    owners = {(b, r) for b, r in redaction_owners(s, blobs) | thumbnail_owners(s, blobs)
              if r != exclude}
    dead = tombstoned_recordings(s, (r for _, r in owners))
    redacted = {b for b, r in owners if r not in dead}
    return live_references(s, blobs, exclude=exclude) | attached(s, blobs) | redacted


def attached(s: Session, blobs: Collection[str]) -> set[str]:
    """Blobs among ``blobs`` that a case attachment (a text record) names."""
    wanted = list(set(blobs))
    if not wanted:
        return set()
    return set(s.exec(select(CaseAttachment.blake3)
                      .where(col(CaseAttachment.blake3).in_(wanted))))


__all__ = ["attached", "recording_content", "still_named"]
