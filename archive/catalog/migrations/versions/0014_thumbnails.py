"""Thumbnails: the append-only ``thumbnail`` table (the web desk's stills).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. One still per rendition
(records/footage_thumbs.py), its JPEG stored by BLAKE3 like every derivative; the unique
key on the rendition makes two first requests at once leave one row. Rows are never
changed: guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

GUARDED = ("thumbnail",)


def upgrade() -> None:
    op.create_table(
        "thumbnail",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("at_us", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.BigInteger(), nullable=False),
        sa.Column("made_by", sa.String(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["blake3"], ["blob.blake3"]),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.ForeignKeyConstraint(["rendition_id"], ["rendition.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rendition_id", name="uq_thumbnail_rendition"),
    )
    op.create_index(op.f("ix_thumbnail_recording_id"), "thumbnail", ["recording_id"],
                    unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_thumbnail_recording_id"), table_name="thumbnail")
    op.drop_table("thumbnail")
