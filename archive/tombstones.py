"""What retention removed (``Tombstone`` rows) and which blobs something live still names.

Shared by fixity (a tombstoned blob is expected absent) and the retention executor (a blob
is removed only when nothing live names it). A recording is *live* until a tombstone
names it; a blob is *live* while a live recording names it as its original, as its
rendition's manifest or segment, or as a derivative. Other packages add their own owners
(case attachments live in :mod:`retention`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from sqlmodel import Session, col, select

from archive.catalog.models import Derivative, Recording, Rendition, Segment, Tombstone


def tombstoned_recordings(s: Session, among: Iterable[str] | None = None) -> set[str]:
    """Recording ids that have a tombstone (all, or those ``among`` the given ids)."""
    query = select(Tombstone.recording_id)
    if among is not None:
        query = query.where(col(Tombstone.recording_id).in_(list(set(among))))
    return set(s.exec(query))


def tombstoned_blobs(s: Session) -> set[str]:
    """Every blob some tombstone says was removed."""
    return {b for blobs in s.exec(select(Tombstone.blobs)) for b in blobs}


def blob_owners(s: Session, blobs: Collection[str]) -> list[tuple[str, str, str]]:
    """``(blob, recording_id, role)`` for every catalog row naming one of ``blobs``.

    Roles: original, manifest, segment, derivative. Tombstoned owners are included.
    """
    wanted = list(set(blobs))
    if not wanted:
        return []
    out = [(b, r, "original") for b, r in s.exec(
        select(Recording.blake3, Recording.id).where(col(Recording.blake3).in_(wanted)))]
    out += [(b or "", r, "manifest") for b, r in s.exec(
        select(Rendition.manifest_blake3, Rendition.recording_id)
        .where(col(Rendition.manifest_blake3).in_(wanted)))]
    out += [(b, r, "segment") for b, r in s.exec(
        select(Segment.blake3, Rendition.recording_id)
        .join(Rendition, col(Rendition.id) == col(Segment.rendition_id))
        .where(col(Segment.blake3).in_(wanted)))]
    out += [(b or "", r, "derivative") for b, r in s.exec(
        select(Derivative.blake3, Derivative.recording_id)
        .where(col(Derivative.blake3).in_(wanted)))]
    return out


def live_references(s: Session, blobs: Collection[str], *,
                    exclude: str | None = None) -> set[str]:
    """The blobs among ``blobs`` that a live recording other than ``exclude`` names."""
    owners = [(b, r) for b, r, _ in blob_owners(s, blobs) if r != exclude]
    dead = tombstoned_recordings(s, (r for _, r in owners))
    return {b for b, r in owners if r not in dead}


def content_of(s: Session, recording_id: str) -> list[tuple[str, str]]:
    """``(blob, role)`` of everything stored for one recording, original first."""
    rec = s.get(Recording, recording_id)
    if rec is None:
        return []
    out = [(rec.blake3, "original")]
    renditions = s.exec(select(Rendition).where(Rendition.recording_id == recording_id)
                        .order_by(col(Rendition.created_at))).all()
    for rendition in renditions:
        if rendition.manifest_blake3:
            out.append((rendition.manifest_blake3, "manifest"))
        segments = s.exec(select(Segment).where(Segment.rendition_id == rendition.id)
                          .order_by(col(Segment.index))).all()
        out += [(seg.blake3, "segment") for seg in segments]
    derivatives = s.exec(select(Derivative).where(Derivative.recording_id == recording_id))
    out += [(d.blake3, "derivative") for d in derivatives if d.blake3]
    first: dict[str, str] = {}
    for b, role in out:
        first.setdefault(b, role)
    return list(first.items())


__all__ = ["blob_owners", "content_of", "live_references", "tombstoned_blobs",
           "tombstoned_recordings"]
