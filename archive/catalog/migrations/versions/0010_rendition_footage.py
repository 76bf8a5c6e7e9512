"""Footage seconds per ok rendition: the append-only ``renditionfootage`` table
(archive/footage_model.py), backfilled from the renditions and segments already stored.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. Statistics read a recording's footage
from the covering index instead of two lookups per recording (issue 18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

GUARDED = ("renditionfootage",)

# The probed duration (rendition.media is JSON text) when it is a positive number.
_PROBED = {
    "sqlite": ("CASE WHEN json_type(r.media, '$.duration_s') IN ('integer', 'real') "
               "AND json_extract(r.media, '$.duration_s') > 0 "
               "THEN json_extract(r.media, '$.duration_s') END"),
    "postgresql": ("CASE WHEN jsonb_typeof(CAST(r.media AS JSONB) -> 'duration_s') = 'number' "
                   "AND CAST(CAST(r.media AS JSONB) ->> 'duration_s' AS DOUBLE PRECISION) > 0 "
                   "THEN CAST(CAST(r.media AS JSONB) ->> 'duration_s' AS DOUBLE PRECISION) END"),
}


def upgrade() -> None:
    op.create_table(
        "renditionfootage",
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("segments_s", sa.Float(), nullable=True),
        sa.Column("probed_s", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.ForeignKeyConstraint(["rendition_id"], ["rendition.id"]),
        sa.PrimaryKeyConstraint("rendition_id"),
    )
    op.create_index("ix_renditionfootage_recording", "renditionfootage",
                    ["recording_id", "segments_s", "probed_s"], unique=False)
    probed = _PROBED[op.get_bind().dialect.name]
    op.execute(
        "INSERT INTO renditionfootage (rendition_id, recording_id, segments_s, probed_s) "
        "SELECT r.id, r.recording_id, "
        "(SELECT CAST(MAX(s.end_us) AS DOUBLE PRECISION) / 1000000.0 FROM segment s "
        f"WHERE s.rendition_id = r.id), {probed} FROM rendition r WHERE r.status = 'ok'")
    refuse_changes(*GUARDED)


def downgrade() -> None:
    op.drop_index("ix_renditionfootage_recording", table_name="renditionfootage")
    op.drop_table("renditionfootage")
