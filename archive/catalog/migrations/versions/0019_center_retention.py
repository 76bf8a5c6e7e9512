"""Retention decided at the center, carried out at stations: the center's ``centerhold``,
``centerholdrelease``, ``centerdeletion`` and ``centerdecision`` tables
(retention/central_models.py), and at a station the center's id on what it carried out:
``hold.source`` (the center hold a station hold was placed for) and
``retentionaction.decision`` (the center decision an approval or cancellation records).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. All four tables are authority records,
append-only like ``hold`` and ``retentionaction``. The unique indexes make carrying a
center hold or decision out idempotent: pulling twice cannot place a second hold or
record a second approval. Added columns are nullable (rows before this revision are
local) and ADD COLUMN touches no row, so the append-only triggers stay as they are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

GUARDED = ("centerhold", "centerholdrelease", "centerdeletion", "centerdecision")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "centerhold",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("scope", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("placed_by", sa.String(), nullable=False),
        sa.Column("placed_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_centerhold_station_id"), "centerhold", ["station_id"])
    op.create_table(
        "centerholdrelease",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("hold_id", sa.String(), nullable=False),
        sa.Column("released_by", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["hold_id"], ["centerhold.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hold_id"),
    )
    _deletions()
    with op.batch_alter_table("hold") as batch:
        batch.add_column(sa.Column("source", sa.String(), nullable=True))
    op.create_index(op.f("ix_hold_source"), "hold", ["source"], unique=True)
    with op.batch_alter_table("retentionaction") as batch:
        batch.add_column(sa.Column("decision", sa.String(), nullable=True))
    op.create_index(op.f("ix_retentionaction_decision"), "retentionaction", ["decision"],
                    unique=True)
    refuse_changes(*GUARDED)


def _deletions() -> None:
    op.create_table(
        "centerdeletion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("rule", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("due_at", _AT, nullable=True),
        sa.Column("scheduled_by", sa.String(), nullable=False),
        sa.Column("scheduled_at", _AT, nullable=False),
        sa.Column("reported_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("station_id", "action_id"),
    )
    op.create_index(op.f("ix_centerdeletion_station_id"), "centerdeletion", ["station_id"])
    op.create_table(
        "centerdecision",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("action_id", sa.BigInteger(), nullable=False),
        sa.Column("verdict", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("decided_by", sa.String(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("station_id", "action_id"),
    )
    op.create_index(op.f("ix_centerdecision_station_id"), "centerdecision", ["station_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_retentionaction_decision"), table_name="retentionaction")
    with op.batch_alter_table("retentionaction") as batch:
        batch.drop_column("decision")
    op.drop_index(op.f("ix_hold_source"), table_name="hold")
    with op.batch_alter_table("hold") as batch:
        batch.drop_column("source")
    for table in ("centerdecision", "centerdeletion", "centerholdrelease", "centerhold"):
        op.drop_table(table)  # indexes and guard triggers go with the tables
    # SQLite drops a column by copying the table, which loses its triggers: guard again.
    refuse_changes("hold", "retentionaction")
