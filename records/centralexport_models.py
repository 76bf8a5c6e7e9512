"""The center's export tables (migration 0020): requests for a clip of a station's
recording, the decisions on them and the packages made.

Same shape and rules as a station's ``exportrequest``/``exportdecision``/``export``
(append-only; status folded from the decisions by :mod:`records.exportbook`), but they
name a station's recording as the center knows it (``centralrecording``), which a
station's foreign keys to its own ``recording`` and ``rendition`` cannot.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, JSONText, utc_field


class CentralExportRequest(SQLModel, table=True):
    """A request, at the center, to take a clip of a station's recording out."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    station_id: str = Field(index=True)
    recording_id: str = Field(index=True)
    start: str | None = None  # as given (seconds, H:MM:SS)
    end: str | None = None
    purpose: str
    recipient: str
    requested_by: str
    reason: str = ""
    at: datetime = utc_field()

    @property
    def case_id(self) -> None:
        """A center request names one recording, never a case."""
        return None


class CentralExportDecision(SQLModel, table=True):
    """approved | rejected | running | released | used | discarded (as at a station)."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="centralexportrequest.id", index=True)
    decision: str
    actor: str
    reason: str = ""
    valid_until: datetime | None = utc_field(nullable=True)
    exports: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    at: datetime = utc_field()


class CentralExport(SQLModel, table=True):
    """A clip package the center wrote from footage it read back and proved."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    request_id: str | None = Field(default=None, index=True)
    station_id: str
    recording_id: str = Field(index=True)
    manifest: str  # BLAKE3 of the station-signed manifest read back
    start_us: int
    end_us: int
    segments: list[int] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))
    destination: str
    actor: str
    purpose: str = ""
    created_at: datetime = utc_field()


class CentralExportOption(SQLModel, table=True):
    """What a center request asks beyond the range's footage, written with it (migration
    0021): ``originals``, the camera file restored from the object store. A request
    without a row asks for nothing more."""

    __table_args__ = APPEND_ONLY
    request_id: str = Field(primary_key=True, foreign_key="centralexportrequest.id")
    originals: bool = False
    at: datetime = utc_field()

    @property
    def exact(self) -> bool:
        return False  # not offered at the center

    @property
    def redaction_id(self) -> None:
        return None  # redactions are made at the station


__all__ = ["CentralExport", "CentralExportDecision", "CentralExportOption",
           "CentralExportRequest"]
