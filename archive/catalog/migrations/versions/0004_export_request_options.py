"""Export request options: ``exportoption`` (records/exportoptions.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. One row per request that asks for an
exact package (no covering segments) or the original camera files; written with the
request and never changed: guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

GUARDED = ("exportoption",)


def upgrade() -> None:
    op.create_table(
        "exportoption",
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("exact", sa.Boolean(), nullable=False),
        sa.Column("originals", sa.Boolean(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["exportrequest.id"]),
        sa.PrimaryKeyConstraint("request_id"),
    )
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_table("exportoption")
