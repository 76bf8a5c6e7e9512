"""The catalog rows of a redaction (技术处理后公开): ``redaction`` and ``redactionstep``.

A redaction is a request to make a redacted derivative of one recording range; every
thing done to it afterwards (a plan, a render, a viewing, an approval or rejection) is
a new step row, never an edit, so the history is the record and the latest plan,
render and decision are simply the latest rows. Both tables are append-only and every
row is bound to the audit event recording it (archive/bindings.py). Plans, rendered
files, statements and signatures are blobs in the content store, named here by BLAKE3.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, utc_field

#: What a step records.
KINDS = ("plan", "render", "view", "approve", "reject")


class Redaction(SQLModel, table=True):
    """A request to redact [start_us, end_us) of a recording, from its rendition."""

    __table_args__ = APPEND_ONLY
    id: str = Field(primary_key=True)
    recording_id: str = Field(foreign_key="recording.id", index=True)
    rendition_id: str
    start_us: int
    end_us: int
    reason: str
    requested_by: str
    created_at: datetime = utc_field()


class RedactionStep(SQLModel, table=True):
    """One step of a redaction: a plan, a render, a viewing, an approval or rejection."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    redaction_id: str = Field(foreign_key="redaction.id", index=True)
    kind: str  # plan | render | view | approve | reject
    actor: str
    at: datetime = utc_field()
    plan_blake3: str | None = None  # the plan this step made or acted on
    output_blake3: str | None = None  # the rendered file (render, view, approve, reject)
    statement_blake3: str | None = None  # redaction.json (render)
    signature_blake3: str | None = None  # redaction.sig.json (render)
    reason: str = ""


__all__ = ["KINDS", "Redaction", "RedactionStep"]
