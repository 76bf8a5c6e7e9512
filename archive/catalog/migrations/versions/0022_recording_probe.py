"""What ffprobe printed for a recording at ingest: ``recordingprobe``
(archive/catalog/models.py).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05

Frozen DDL: plain ``op`` calls, no model imports. One append-only row per recording
whose media check made a plain ffprobe call, written in the recording's own
transaction; the renderer plans from it instead of starting ffprobe again (issue 14).
Recordings from before have no row and are probed as before: nothing to backfill.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordingprobe",
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("tool", sa.String(), nullable=False),
        sa.Column("probe", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    refuse_changes("recordingprobe")


def downgrade() -> None:
    op.drop_table("recordingprobe")  # its guard triggers go with it
