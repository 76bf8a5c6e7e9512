"""Authority rows bound to their audit events: the append-only ``binding`` table.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. One row per catalog row that carries
authority (export decisions, case links, holds, releases, marks, retention steps): the
audit event that vouches for it and the row's digest (archive/bindings.py). Guarded like
the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

GUARDED = ("binding",)


def upgrade() -> None:
    op.create_table(
        "binding",
        sa.Column("table_name", sa.String(), nullable=False),
        sa.Column("row_id", sa.String(), nullable=False),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("table_name", "row_id"),
    )
    op.create_index(op.f("ix_binding_audit_seq"), "binding", ["audit_seq"], unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_binding_audit_seq"), table_name="binding")
    op.drop_table("binding")
