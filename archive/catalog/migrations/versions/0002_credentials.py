"""Login passwords: the append-only ``credential`` table (records/credentials.py).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. One row per password set (argon2
hash) or login disabled (empty hash) by `evidock admin passwd`; the newest row of a
user is in force, so rows are never changed: guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GUARDED = ("credential",)


def upgrade() -> None:
    op.create_table(
        "credential",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_name", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_credential_user_name"), "credential", ["user_name"],
                    unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the table on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_credential_user_name"), table_name="credential")
    op.drop_table("credential")
