"""Redactions (技术处理后公开): the append-only ``redaction`` and ``redactionstep`` tables.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. A redaction of a recording range
(records/redactions.py) and its steps — plan, render, view, approve, reject — one row
each, bound to the audit event recording it; the latest rows are in force, so rows are
never changed: guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

GUARDED = ("redaction", "redactionstep")


def upgrade() -> None:
    op.create_table(
        "redaction",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_redaction_recording_id"), "redaction", ["recording_id"],
                    unique=False)
    op.create_table(
        "redactionstep",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("redaction_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("plan_blake3", sa.String(), nullable=True),
        sa.Column("output_blake3", sa.String(), nullable=True),
        sa.Column("statement_blake3", sa.String(), nullable=True),
        sa.Column("signature_blake3", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(["redaction_id"], ["redaction.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_redactionstep_redaction_id"), "redactionstep",
                    ["redaction_id"], unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the tables on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_redactionstep_redaction_id"), table_name="redactionstep")
    op.drop_table("redactionstep")
    op.drop_index(op.f("ix_redaction_recording_id"), table_name="redaction")
    op.drop_table("redaction")
