"""Witnessing of audit logs: the append-only ``cosignedhead`` and ``witnessconflict``
tables (archive/witness/book.py) and the center's mirror of each station's audit log,
``stationevent`` (archive/witness/mirror.py), with the index of cases and recordings
of all stations built from it (``central*``, archive/witness/index.py: sessions and
recordings append-only; of a case only its label may change, of a link only whether it
is active).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. A countersigned head (kept by the
center for each station it witnesses, and by a station for its own heads) and a conflict
(a head that did not extend the witnessed log, with what it was judged against) are
evidence once written: both are guarded like the evidence tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import keep_columns, refuse_changes

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

GUARDED = ("cosignedhead", "witnessconflict", "stationevent")
# Frozen copies of archive/witness/index.py's CASE_FIXED and LINK_FIXED.
CASE_FIXED = ("station_id", "case_id", "number", "case_type", "unit", "created_at")
LINK_FIXED = ("station_id", "link_id", "case_id", "recording_id", "stage")


def upgrade() -> None:
    op.create_table(
        "cosignedhead",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.String(), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("signature", sa.String(), nullable=False),
        sa.Column("witness_id", sa.String(), nullable=False),
        sa.Column("witnessed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("witness_key_id", sa.String(), nullable=False),
        sa.Column("cosignature", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_cosignedhead_station_id"), "cosignedhead", ["station_id"],
                    unique=False)
    op.create_table(
        "witnessconflict",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("head", sa.Text(), nullable=False),
        sa.Column("witnessed", sa.Text(), nullable=False),
        sa.Column("proof", sa.Text(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_witnessconflict_station_id"), "witnessconflict",
                    ["station_id"], unique=False)
    op.create_table(
        "stationevent",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("subjects", sa.Text(), nullable=False),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("leaf_hash", sa.String(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "seq"),
    )
    refuse_changes(*GUARDED)
    _index()


def _index() -> None:
    op.create_table(
        "centralsession",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("officer", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "session_id"),
    )
    op.create_table(
        "centralrecording",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("session_id", sa.String(), nullable=False),
        sa.Column("device", sa.String(), nullable=True),
        sa.Column("officer", sa.String(), nullable=True),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("blake3", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "recording_id"),
    )
    op.create_index(op.f("ix_centralrecording_officer"), "centralrecording", ["officer"])
    op.create_index(op.f("ix_centralrecording_blake3"), "centralrecording", ["blake3"])
    op.create_table(
        "centralcase",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("number", sa.String(), nullable=False),
        sa.Column("case_type", sa.String(), nullable=True),
        sa.Column("unit", sa.String(), nullable=False),
        sa.Column("sensitivity", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "case_id"),
    )
    op.create_index(op.f("ix_centralcase_number"), "centralcase", ["number"])
    op.create_table(
        "centrallink",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("stage", sa.String(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "link_id"),
    )
    op.create_index(op.f("ix_centrallink_recording_id"), "centrallink", ["recording_id"])
    refuse_changes("centralsession", "centralrecording")
    keep_columns("centralcase", fixed=CASE_FIXED)
    keep_columns("centrallink", fixed=LINK_FIXED)


def downgrade() -> None:
    # Triggers go with the tables on both SQLite and PostgreSQL.
    for table in ("centrallink", "centralcase", "centralrecording", "centralsession",
                  "stationevent"):
        op.drop_table(table)  # the indexes go with the tables
    op.drop_index(op.f("ix_witnessconflict_station_id"), table_name="witnessconflict")
    op.drop_table("witnessconflict")
    op.drop_index(op.f("ix_cosignedhead_station_id"), table_name="cosignedhead")
    op.drop_table("cosignedhead")
