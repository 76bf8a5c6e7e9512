"""The catalog's record of trusted timestamps (RFC 3161): what waits, what was received.

A ``StampItem`` is a signed thing that needs a token (a rendition manifest, an audit tree
head), queued in the same transaction that stores it; a ``StampToken`` is the verified
token a TSA returned for it. Both are append-only: an item waits while it has no token,
so being drained needs no update (``archive/timestamps.py`` sends and stores).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint, func, insert, select
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from archive.catalog.types import APPEND_ONLY, table_of, utc_field

#: Kinds of stamped things; the subject names one within its kind.
MANIFEST = "manifest"  # subject: the signed manifest's BLAKE3 (its blob)
TREE_HEAD = "tree_head"  # subject: the id of its ``treehead`` row
KINDS = (MANIFEST, TREE_HEAD)


class StampItem(SQLModel, table=True):
    """Something signed that needs a timestamp token over ``sha256`` (its signed bytes)."""

    __table_args__ = (UniqueConstraint("kind", "subject", name="uq_stampitem_subject"),
                      APPEND_ONLY)
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    subject: str
    sha256: str = Field(index=True)
    #: the time the station's own signature claims
    claimed_at: datetime = utc_field()
    queued_at: datetime = utc_field()


class StampToken(SQLModel, table=True):
    """A token received for an item and verified before it was stored."""

    __table_args__ = APPEND_ONLY
    id: int | None = Field(default=None, primary_key=True)
    item_id: int = Field(foreign_key="stampitem.id", unique=True)
    tsa_url: str
    token: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    attested_at: datetime = utc_field()
    tsa_name: str
    serial: str
    received_at: datetime = utc_field()


_I = table_of(StampItem)
_K = table_of(StampToken)


def enqueue(conn: Connection, *, kind: str, subject: str, sha256: str,
            claimed_at: datetime, at: datetime) -> None:
    """Queue ``subject`` for a token, inside the caller's transaction (so the signed
    thing and its place in the queue commit together). Queuing twice is a no-op."""
    if kind not in KINDS:
        raise ValueError(f"unknown timestamp kind {kind!r}")
    exists = conn.execute(select(_I.c.id).where(_I.c.kind == kind, _I.c.subject == subject))
    if exists.first() is None:
        conn.execute(insert(_I), {"kind": kind, "subject": subject, "sha256": sha256,
                                  "claimed_at": claimed_at, "queued_at": at})


def pending_count(conn: Connection) -> int:
    """How many items still wait for a token."""
    waiting = select(func.count()).select_from(_I.outerjoin(_K, _K.c.item_id == _I.c.id))
    return int(conn.execute(waiting.where(_K.c.id.is_(None))).scalar_one())
