"""The center's retention tables: holds placed at the center on a station's records,
their releases, the deletions stations report as scheduled and the center's decisions.

Append-only like every authority-bearing table: a release or a decision is a new row.
Stations carry them out (retention/center_sync.py); the center never deletes anything.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, utc_field


class CenterHold(SQLModel, table=True):
    """A hold placed at the center on station ``station_id``'s case, recording or officer
    (``target`` as given: a station resolves a case number itself)."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    station_id: str = Field(index=True)
    scope: str  # case | recording | officer
    target: str
    reason: str
    placed_by: str
    placed_at: datetime = utc_field()


class CenterHoldRelease(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    hold_id: str = Field(foreign_key="centerhold.id", unique=True)
    released_by: str
    reason: str
    at: datetime = utc_field()


class CenterDeletion(SQLModel, table=True):
    """A deletion a station scheduled and reported (its ``scheduled`` step ``action_id``)."""

    __table_args__ = (UniqueConstraint("station_id", "action_id"), APPEND_ONLY)
    id: int | None = Field(default=None, primary_key=True)
    station_id: str = Field(index=True)
    action_id: int
    recording_id: str
    rule: str
    reason: str
    due_at: datetime | None = utc_field(nullable=True)
    scheduled_by: str
    scheduled_at: datetime = utc_field()
    reported_at: datetime = utc_field()


class CenterDecision(SQLModel, table=True):
    """The center's one decision on a reported deletion: approved or rejected."""

    __table_args__ = (UniqueConstraint("station_id", "action_id"), APPEND_ONLY)
    id: str = Field(primary_key=True)
    station_id: str = Field(index=True)
    action_id: int
    verdict: str  # approved | rejected
    reason: str
    decided_by: str
    at: datetime = utc_field()


__all__ = ["CenterDecision", "CenterDeletion", "CenterHold", "CenterHoldRelease"]
