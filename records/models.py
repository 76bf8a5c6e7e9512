"""Catalog tables for case records, marks, export approvals and the exports made.

Every table here is append-only (guarded by the same triggers as evidence): state such
as "case closed", "link removed", "hold released" or "request approved" is a new row,
so the history is the record. Current state is folded from the rows in order of ``id``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, JSONText, utc_field


class Case(SQLModel, table=True):
    """A case as the agency numbers it. The row never changes; see CaseEvent."""

    __tablename__ = "casefile"  # "case" is an SQL keyword
    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    number: str = Field(unique=True, index=True)  # exactly as written, e.g. 邵城管罚〔2019〕第001号
    case_type: str
    unit: str
    title: str = ""
    sensitivity: str = "none"  # initial label; later changes are CaseEvents
    created_by: str
    created_at: datetime = utc_field()


class CaseEvent(SQLModel, table=True):
    """A change of a case's state: closed, reopened, sensitivity relabelled."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    kind: str  # closed | reopened | sensitivity
    value: str = ""  # the new sensitivity label
    effective_at: datetime = utc_field()  # closing date as the agency records it
    actor: str
    reason: str = ""
    at: datetime = utc_field()


class CaseStage(SQLModel, table=True):
    """When a stage of a case took place (from the text record), for coverage gaps."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    stage: str
    start_at: datetime = utc_field()
    end_at: datetime = utc_field()
    actor: str
    note: str = ""
    at: datetime = utc_field()


class CaseLink(SQLModel, table=True):
    """A recording (or a time range of it) linked to a case at a stage, or unlinked.

    ``action`` "link" adds; "unlink" names the link it removes in ``unlinks``.
    A range is [start_us, end_us) on the recording's timeline; None means the whole.
    """

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    action: str  # link | unlink
    unlinks: int | None = Field(default=None, index=True)  # statistics' link counts
    stage: str = ""
    start_us: int | None = None
    end_us: int | None = None
    actor: str
    reason: str
    at: datetime = utc_field()


class CaseAttachment(SQLModel, table=True):
    """A text record (document) of a case, stored and hashed like footage."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(foreign_key="casefile.id", index=True)
    blake3: str = Field(foreign_key="blob.blake3", index=True)
    sha256: str
    size: int
    filename: str
    description: str = ""
    actor: str
    at: datetime = utc_field()


class RecordingMark(SQLModel, table=True):
    """A class or category a clerk puts on a recording (作为证据使用, 妨碍执法, a category).

    ``kind`` "mark" rows add or remove a permanent-class mark; "unmark" rows request the
    removal of a permanent mark, which a second person confirms (records/marks.py);
    "category" rows set the recording's retention category (the latest wins).
    """

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    kind: str  # mark | unmark | category
    value: str
    action: str = "add"  # add | remove (marks only)
    actor: str
    reason: str
    at: datetime = utc_field()




class ExportRequest(SQLModel, table=True):
    """A request to take footage out of the archive; nothing leaves without approval."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    case_id: str | None = Field(default=None, foreign_key="casefile.id", index=True)
    recording_id: str | None = Field(default=None, foreign_key="recording.id", index=True)
    start: str | None = None  # as given (seconds, H:MM:SS, ISO); None = whole
    end: str | None = None
    purpose: str
    recipient: str
    requested_by: str
    reason: str = ""
    at: datetime = utc_field()


class ExportDecision(SQLModel, table=True):
    """approved | rejected | used (a package was produced) | expired is computed."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    request_id: str = Field(foreign_key="exportrequest.id", index=True)
    decision: str  # approved | rejected | used
    actor: str
    reason: str = ""
    valid_until: datetime | None = utc_field(nullable=True)
    exports: list[str] = Field(default_factory=list, sa_column=Column(JSONText(), nullable=False))
    at: datetime = utc_field()


class Export(SQLModel, table=True):
    """A clip package written out of the archive."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    rendition_id: str = Field(foreign_key="rendition.id")
    start_us: int
    end_us: int
    segments: list[int] = Field(default_factory=list,
                                sa_column=Column(JSONText(), nullable=False))
    destination: str
    actor: str
    purpose: str = ""
    request_id: str | None = None
    created_at: datetime = utc_field()


__all__ = ["APPEND_ONLY", "Case", "CaseAttachment", "CaseEvent", "CaseLink", "CaseStage",
           "Export", "ExportDecision", "ExportRequest", "RecordingMark"]
