"""The ``recordingstat`` table: what statistics count of each recording, one row each.

A statistics pass used to look up, per recording, its footage (``renditionfootage``),
its active links (``caselink``) and its dock session, in index order unrelated to the
scan: at 10⁵ recordings most of the pass was page-cache misses. These rows keep those
facts together, in recording order, so a pass is one scan of one narrow table.

The database keeps them, not the application (migration 0015): triggers insert the row
with its recording, refresh ``seconds`` when an ok rendition's footage is stored and
``links`` when a link or unlink row is written, so no write path can forget to. The
row is derived, never evidence: the catalog's evidence tables stay append-only and
the statistics tests hold these facts equal to their recomputation from those tables.
Guarded: rows are never deleted and only ``seconds`` and ``links`` ever change.

- ``recorded_at``: camera start, else (clock unknown) ingest time.
- ``start_s``, ``offloaded_s``: seconds since 1970 of the camera start (NULL: unknown)
  and of the offload (the dock session's start, else ingest time), as the database
  computes them (SQLite julianday, PostgreSQL EXTRACT EPOCH), for the late-offload rule.
- ``seconds``: the longest ok rendition's footage (NULL: unknown), as ``renditionfootage``
  says; ``links``: active link rows (links no unlink row names).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from archive.catalog.types import utc_field

#: Columns fixed when the row is made (the migration's guard refuses changing them).
FIXED = ("recording_id", "officer_id", "recorded_at", "start_s", "offloaded_s")


class RecordingStat(SQLModel, table=True):
    __table_args__ = {"info": {"derived": True, "fixed": FIXED}}
    recording_id: str = Field(primary_key=True, foreign_key="recording.id")
    officer_id: str | None = None
    recorded_at: datetime = utc_field()
    start_s: float | None = None
    offloaded_s: float
    seconds: float | None = None
    links: int = 0


__all__ = ["FIXED", "RecordingStat"]
