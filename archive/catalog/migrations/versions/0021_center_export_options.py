"""Originals in a center export: ``centralexportoption`` (records/centralexport_models.py).

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. Like a station's ``exportoption``,
one append-only row per request, written with it, that the approver sees before
approving and the run reads: ``originals`` (the camera file too, restored from the
object store and proven).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "centralexportoption",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("originals", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["centralexportrequest.id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    refuse_changes("centralexportoption")


def downgrade() -> None:
    op.drop_table("centralexportoption")  # its guard triggers go with it
