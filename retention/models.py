"""Catalog tables of retention: legal holds, their releases and the steps of a deletion.

Append-only like every authority-bearing table: a release or a cancellation is a new row.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, utc_field


class Hold(SQLModel, table=True):
    """A legal hold on a case, a recording or an officer's footage."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    scope: str  # case | recording | officer
    target: str
    reason: str
    placed_by: str
    placed_at: datetime = utc_field()
    #: the center hold this carries out (retention/center_sync.py); None: placed here
    source: str | None = Field(default=None, index=True, unique=True)

class HoldRelease(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    hold_id: str = Field(foreign_key="hold.id", unique=True)
    released_by: str
    reason: str
    at: datetime = utc_field()

class RetentionAction(SQLModel, table=True):
    """A step of a deletion: scheduled (grace starts), approved, cancelled, executed."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    step: str  # scheduled | approved | cancelled | executed
    rule: str
    reason: str
    due_at: datetime | None = utc_field(nullable=True)
    actor: str
    at: datetime = utc_field()
    #: the center decision an approval or cancellation records; None: decided here
    decision: str | None = Field(default=None, index=True, unique=True)


__all__ = ["Hold", "HoldRelease", "RetentionAction"]
