"""Per-case stage applicability (不适用): the append-only ``stageapplicability`` table
(records/applicability.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. One row per decision that a checklist
stage does (not) apply to a case, with its reason; the newest row of a stage is in
force, so rows are never changed: guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

GUARDED = ("stageapplicability",)


def upgrade() -> None:
    op.create_table(
        "stageapplicability",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("applicable", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["casefile.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_stageapplicability_case_id"), "stageapplicability",
                    ["case_id"], unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_stageapplicability_case_id"), table_name="stageapplicability")
    op.drop_table("stageapplicability")
