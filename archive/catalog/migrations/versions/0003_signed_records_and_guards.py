"""Signed records (``seal``) and a guard on every catalog table.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. ``seal`` names the signed record
(integrity/records.py, a blob in the store) of each recording and dock session;
append-only. The tables that had no trigger get one: ``device``, ``officer`` and
``sessionfile`` are append-only; a ``docksession`` is never deleted and is updated once,
to close it (``ended_at``, ``outcome``, ``error_code`` of an open session, nothing
else); an ``uploaditem`` (the upload queue's mutable scheduling state) is never deleted
and never changes the blob or object key it is for, nor when it was queued.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import keep_columns, refuse_changes

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GUARDED = ("seal", "device", "officer", "sessionfile")
_SESSION_FIXED = ("id", "station_id", "device_serial", "officer_id", "camera_model",
                  "source", "bay", "wipe_requested", "started_at", "clock_drift_s")
_SESSION_CLOSED_BY = ("outcome", "ended_at")
_UPLOAD_FIXED = ("blake3", "key", "enqueued_at")


def upgrade() -> None:
    op.create_table(
        "seal",
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["blake3"], ["blob.blake3"]),
        sa.PrimaryKeyConstraint("blake3"),
    )
    op.create_index("ix_seal_subject", "seal", ["kind", "subject"], unique=False)
    refuse_changes(*GUARDED)
    keep_columns("docksession", fixed=_SESSION_FIXED, closed_by=_SESSION_CLOSED_BY)
    keep_columns("uploaditem", fixed=_UPLOAD_FIXED)


def downgrade() -> None:
    for table in ("docksession", "uploaditem"):
        for name in (f"keep_{table}", f"no_delete_{table}", f"no_truncate_{table}"):
            _drop_trigger(name, table)
    for table in ("device", "officer", "sessionfile"):
        for name in (f"no_update_{table}", f"no_delete_{table}", f"no_change_{table}",
                     f"no_truncate_{table}"):
            _drop_trigger(name, table)
    op.drop_index("ix_seal_subject", table_name="seal")
    op.drop_table("seal")


def _drop_trigger(name: str, table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
