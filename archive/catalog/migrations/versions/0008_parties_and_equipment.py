"""Parties (当事人) on cases and camera-to-officer assignments: ``caseparty`` and
``cameraassignment`` (records/parties.py, records/equipment.py).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

Frozen DDL: plain ``op`` calls, no model imports. A party is added, corrected (a new
row naming the one it replaces) or removed (a row with a reason); a camera's holder
changes by a new assignment row from a date on. Both guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

GUARDED = ("caseparty", "cameraassignment")


def upgrade() -> None:
    op.create_table(
        "caseparty",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("ends", sa.BigInteger(), nullable=True),
        sa.Column("corrects", sa.BigInteger(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("id_type", sa.String(), nullable=False),
        sa.Column("id_number", sa.String(), nullable=False),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("id_key", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["casefile.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_caseparty_case_id"), "caseparty", ["case_id"], unique=False)
    op.create_index("ix_caseparty_id_key", "caseparty", ["id_key"], unique=False)
    op.create_table(
        "cameraassignment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_serial", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_serial"], ["device.serial"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_cameraassignment_device_serial"), "cameraassignment",
                    ["device_serial"], unique=False)
    refuse_changes(*GUARDED)


def downgrade() -> None:
    # Triggers go with the tables on both SQLite and PostgreSQL.
    op.drop_index(op.f("ix_cameraassignment_device_serial"), table_name="cameraassignment")
    op.drop_table("cameraassignment")
    op.drop_index("ix_caseparty_id_key", table_name="caseparty")
    op.drop_index(op.f("ix_caseparty_case_id"), table_name="caseparty")
    op.drop_table("caseparty")
