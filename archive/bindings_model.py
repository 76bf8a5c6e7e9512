"""The ``binding`` table: which audit event vouches for each row that carries authority.

One row per authority-bearing catalog row (export decisions, case links, holds and
releases, recording marks, retention steps), written in the same transaction as that
row and the event whose details carry the row's digest (:mod:`archive.bindings`).
Append-only, like what it binds.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, utc_field


class Binding(SQLModel, table=True):
    __table_args__ = APPEND_ONLY
    table_name: str = Field(primary_key=True)
    row_id: str = Field(primary_key=True)
    audit_seq: int = Field(index=True)
    digest: str
    at: datetime = utc_field()


__all__ = ["Binding"]
