"""Thumbnails: one still of a recording's rendition, made once by ffmpeg and kept.

The still is a derivative like a rendition segment: its JPEG bytes go into the content
store (BLAKE3-named, with a ``blob`` row) and a ``thumbnail`` row ties it to the
rendition it was taken from (one per rendition: a unique key, so two first requests at
once leave one row; the loser serves the winner's). Rows are never changed.

Who may see a still: exactly who may view the recording (``recording.view`` and every
actively linked case's unit and label, as :meth:`records.viewing.Viewer.show`), else the
same refusal or "no recording". A still shows the footage, so every time one is handed
out it is an audit event (``read.recording.thumbnail``, naming the recording and the
still's blob, and whether it was made just now), like every segment played.
"""

from __future__ import annotations

import io
import subprocess
import threading
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from archive.catalog import Catalog
from archive.catalog.models import Blob, Rendition, Segment
from archive.catalog.types import APPEND_ONLY, utc_field
from archive.store import ContentStore
from archive.tombstones import tombstoned_recordings
from integrity.errors import CatalogError, MediaError, NotFound
from records.casebook import Casebook
from records.dossier import require_recording
from records.permissions import Actor, Gate, P

#: Width of a still (height keeps the aspect, even for the encoder).
WIDTH = 320
FFMPEG_TIMEOUT_S = 30.0
#: Striped locks: one ffmpeg per rendition in this process, with memory bounded however
#: many renditions are asked for (two renditions may share a stripe: one waits).
_STRIPES = tuple(threading.Lock() for _ in range(64))


class Thumbnail(SQLModel, table=True):
    """The still of one rendition (its first segment, ``at_us`` in)."""

    __table_args__ = (UniqueConstraint("rendition_id", name="uq_thumbnail_rendition"),
                      APPEND_ONLY)
    id: int | None = Field(default=None, primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    rendition_id: str = Field(foreign_key="rendition.id")
    blake3: str = Field(foreign_key="blob.blake3")
    size: int
    at_us: int
    width: int
    made_by: str
    made_at: datetime = utc_field()


@dataclass(frozen=True, slots=True)
class Still:
    blake3: str
    size: int
    path: Path
    made: bool  # made by this request
    rendition_id: str = ""
    recording_id: str = ""


def grab(segment: Path, at_s: float, *, timeout: float = FFMPEG_TIMEOUT_S) -> bytes:
    """One JPEG frame of ``segment`` at ``at_s`` (argv, no shell, bounded in time)."""
    argv = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-ss", f"{at_s:.3f}",
            "-i", str(segment), "-frames:v", "1", "-vf", f"scale={WIDTH}:-2", "-f", "image2",
            "-c:v", "mjpeg", "-q:v", "5", "pipe:1"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(f"ffmpeg took more than {timeout:.0f} s for a still",
                              segment=segment.name) from None
    if done.returncode != 0 or not done.stdout.startswith(b"\xff\xd8"):
        raise MediaError("ffmpeg made no still: "
                              + done.stderr.decode("utf-8", "replace")[-300:],
                              segment=segment.name)
    return done.stdout


class Thumbnails:
    def __init__(self, *, catalog: Catalog, store: ContentStore, gate: Gate) -> None:
        self.catalog, self.store, self.gate = catalog, store, gate
        self.book = Casebook(catalog=catalog)

    def still(self, actor: Actor, recording_id: str) -> Still:
        """The recording's still for ``actor`` (made on first request), audited."""
        return self._served(actor, self.make(actor, recording_id))

    def stored(self, actor: Actor, recording_id: str) -> Still | None:
        """The still if it was made already (audited as served), else None: with a job
        queue the desk then queues a ``thumbnails`` job rather than run ffmpeg itself."""
        rendition, _first = self._allowed(actor, recording_id)
        row = self._stored(rendition.id)
        return None if row is None else self._served(actor, self._still(row, False))

    def make(self, actor: Actor, recording_id: str) -> Still:
        """The still, made now unless it exists; the same checks, nothing handed out (so
        no read event): what the ``thumbnails`` job does for the user who asked."""
        rendition, first = self._allowed(actor, recording_id)
        row, made = self._stored(rendition.id), False
        if row is None:
            with _lock_for(rendition.id):  # one ffmpeg per rendition in this process
                row = self._stored(rendition.id)
                if row is None:
                    row, made = self._make(actor, rendition, first)
        return self._still(row, made)

    def _allowed(self, actor: Actor, recording_id: str) -> tuple[Rendition, Segment]:
        if recording_id not in self.book.recordings([recording_id]):
            raise NotFound(f"no recording {recording_id}", recording=recording_id)
        with Session(self.catalog.engine) as s:  # deleted by retention: no still either
            if tombstoned_recordings(s, [recording_id]):
                raise NotFound(f"recording {recording_id} was deleted by retention",
                               recording=recording_id)
        cases = self.book.sensitivity_of_recordings([recording_id])[recording_id]
        require_recording(self.gate, actor, P.RECORDING_VIEW, recording_id, cases)
        return self._source(recording_id)

    def _still(self, row: Thumbnail, made: bool) -> Still:
        return Still(blake3=row.blake3, size=row.size, path=self.store.path_for(row.blake3),
                     made=made, rendition_id=row.rendition_id, recording_id=row.recording_id)

    def _served(self, actor: Actor, still: Still) -> Still:
        self.gate.read(actor, "recording.thumbnail",
                       [f"recording:{still.recording_id}", f"blob:{still.blake3}"],
                       {"rendition": still.rendition_id, "made": still.made,
                        "size": still.size})
        return still

    def _source(self, recording_id: str) -> tuple[Rendition, Segment]:
        """The newest ``ok`` rendition and its first segment (what the player plays)."""
        with Session(self.catalog.engine) as s:
            rendition = s.exec(select(Rendition).where(
                Rendition.recording_id == recording_id, Rendition.status == "ok")
                .order_by(col(Rendition.created_at).desc(), col(Rendition.id).desc())
                ).first()
            first = None if rendition is None else s.exec(select(Segment).where(
                Segment.rendition_id == rendition.id).order_by(col(Segment.index))).first()
        if rendition is None or first is None:
            raise NotFound(f"recording {recording_id} has no rendition yet",
                           recording=recording_id)
        return rendition, first

    def _stored(self, rendition_id: str) -> Thumbnail | None:
        with Session(self.catalog.engine) as s:
            return s.exec(select(Thumbnail).where(
                Thumbnail.rendition_id == rendition_id)).first()

    def _make(self, actor: Actor, rendition: Rendition,
              first: Segment) -> tuple[Thumbnail, bool]:
        """The rendition's still, made now (True) or, when another process stored one
        first, that one (False)."""
        length_s = max(0.0, (first.end_us - first.start_us) / 1e6)
        at_s = min(1.0, length_s / 2)  # a second in: past a black first frame
        jpeg = grab(self.store.path_for(first.blake3), at_s)
        digests = self.store.put(io.BytesIO(jpeg), vouched=self._vouched)
        made_at, tries = self.gate.clock(), 0
        while True:
            tries += 1
            row = Thumbnail(recording_id=rendition.recording_id, rendition_id=rendition.id,
                            blake3=digests.blake3, size=digests.size,
                            at_us=round(at_s * 1e6), width=WIDTH,
                            made_by=actor.audit_name, made_at=made_at)
            try:
                with self.catalog.transaction() as s:
                    if s.get(Blob, digests.blake3) is None:
                        s.add(Blob(blake3=digests.blake3, sha256=digests.sha256,
                                   size=digests.size, stored_at=made_at))
                    s.add(row)
            except CatalogError as exc:
                # Another process committed first. The failed transaction was rolled back
                # whole (on PostgreSQL a failed INSERT aborts it: nothing more is asked
                # in it); what it lost to is read in a new one.
                other = self._stored(rendition.id)
                if other is not None:  # this rendition's still: serve that one
                    return other, False
                # Or the same JPEG as another rendition's still (two recordings opening
                # on the same frame): its blob row, absent when this transaction looked
                # (PostgreSQL does not serialise writers as SQLite's BEGIN IMMEDIATE
                # does), is there now; once more, and the row is found.
                if tries == 2 or not isinstance(exc.__cause__, IntegrityError):
                    raise
                continue
            return row, True

    def _vouched(self, b3: str) -> bool:
        return self.catalog.blob(b3) is not None


def thumbnail_content(s: Session, recording_id: str) -> list[tuple[str, str]]:
    """``(blob, "thumbnail")`` of the recording's stills: content retention removes
    with the recording (a still shows the footage)."""
    rows = s.exec(select(Thumbnail.blake3).where(Thumbnail.recording_id == recording_id))
    return [(b3, "thumbnail") for b3 in rows]


def thumbnail_owners(s: Session, blobs: Collection[str]) -> set[tuple[str, str]]:
    """``(blob, recording_id)`` for every still among ``blobs``: two recordings that
    open on the same black frame share one JPEG, which must outlive either's deletion."""
    wanted = list(set(blobs))
    if not wanted:
        return set()
    return {(b, r) for b, r in s.exec(select(Thumbnail.blake3, Thumbnail.recording_id)
                                      .where(col(Thumbnail.blake3).in_(wanted)))}


def _lock_for(key: str) -> threading.Lock:
    return _STRIPES[zlib.crc32(key.encode()) % len(_STRIPES)]


__all__ = ["WIDTH", "Still", "Thumbnail", "Thumbnails", "grab", "thumbnail_content",
           "thumbnail_owners"]
