"""The ``renditionfootage`` table: each ok rendition's footage seconds, kept when it is stored.

Statistics read a recording's footage from here (one covering-index lookup by
recording) instead of finding its renditions and their last segments per row. A row
per ok rendition, written in the rendition's own transaction (ingest/process.py) and
backfilled for older renditions by migration 0010; renditions are never edited, so
neither are these rows. ``segments_s``: the end of the rendition's last segment;
``probed_s``: its probed duration when positive (NULL: unknown). A recording's footage
is ``coalesce(max(segments_s), max(probed_s))`` over its rows, as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from archive.catalog.models import Rendition, Segment
from archive.catalog.types import APPEND_ONLY


class RenditionFootage(SQLModel, table=True):
    # Covering: the statistics lookup reads the index alone.
    __table_args__ = (Index("ix_renditionfootage_recording", "recording_id", "segments_s",
                            "probed_s"), APPEND_ONLY)
    rendition_id: str = Field(primary_key=True, foreign_key="rendition.id")
    recording_id: str = Field(foreign_key="recording.id")
    segments_s: float | None = None
    probed_s: float | None = None


def footage_of(rendition: Rendition, segments: Sequence[Segment]) -> RenditionFootage:
    """The row for an ok rendition about to be stored with ``segments``."""
    probed = rendition.media.get("duration_s")
    # bool is an int to Python, not a number to the JSON functions the backfill used.
    if not isinstance(probed, int | float) or isinstance(probed, bool) or probed <= 0:
        probed = None
    end_us = max((s.end_us for s in segments), default=None)
    return RenditionFootage(
        rendition_id=rendition.id, recording_id=rendition.recording_id,
        segments_s=None if end_us is None else end_us / 1_000_000.0,
        probed_s=None if probed is None else float(probed))


__all__ = ["RenditionFootage", "footage_of"]
