"""Review decisions (法制审核): the append-only ``casereview`` table (records/reviews.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. One row per decision (同意 / 暂不同意
/ 不同意) with its reason and reviewer, bound to the audit event recording it
(archive/bindings.py); the latest row of a case is in force, so rows are never changed:
guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

GUARDED = ("casereview",)


def upgrade() -> None:
    op.create_table(
        "casereview",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["casefile.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_casereview_case_id"), "casereview", ["case_id"],
                    unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_casereview_case_id"), table_name="casereview")
    op.drop_table("casereview")
