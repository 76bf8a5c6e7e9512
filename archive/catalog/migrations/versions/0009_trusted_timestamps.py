"""Trusted timestamps (RFC 3161): the append-only ``stampitem`` and ``stamptoken`` tables
(archive/timestamp_rows.py).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. An item is queued with the signed thing
it stamps and waits while it has no token; a token is stored once, verified: neither row
ever changes, so both are guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

GUARDED = ("stampitem", "stamptoken")


def upgrade() -> None:
    op.create_table(
        "stampitem",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("subject", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "subject", name="uq_stampitem_subject"),
    )
    op.create_index(op.f("ix_stampitem_sha256"), "stampitem", ["sha256"], unique=False)
    op.create_table(
        "stamptoken",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("tsa_url", sa.String(), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("attested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tsa_name", sa.String(), nullable=False),
        sa.Column("serial", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["item_id"], ["stampitem.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("item_id"),
    )
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the tables on both SQLite and PostgreSQL.
    op.drop_table("stamptoken")
    op.drop_index(op.f("ix_stampitem_sha256"), table_name="stampitem")
    op.drop_table("stampitem")
