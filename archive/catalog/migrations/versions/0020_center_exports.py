"""Exporting from the center: ``centralexportrequest``, ``centralexportdecision`` and
``centralexport`` (records/centralexport_models.py).

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. Like a station's ``exportrequest``,
``exportdecision`` and ``export``, all three are append-only: a request's status is
folded from its decisions, and each decision is bound to the audit event that vouches
for it. They name a station's recording as the center indexes it (station id plus
recording id), not the center's own ``recording`` table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

GUARDED = ("centralexportrequest", "centralexportdecision", "centralexport")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "centralexportrequest",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("start", sa.String(), nullable=True),
        sa.Column("end", sa.String(), nullable=True),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_centralexportrequest_station_id"), "centralexportrequest",
                    ["station_id"])
    op.create_index(op.f("ix_centralexportrequest_recording_id"), "centralexportrequest",
                    ["recording_id"])
    op.create_table(
        "centralexportdecision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("valid_until", _AT, nullable=True),
        sa.Column("exports", sa.Text(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["centralexportrequest.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_centralexportdecision_request_id"), "centralexportdecision",
                    ["request_id"])
    op.create_table(
        "centralexport",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=True),
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("manifest", sa.String(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("segments", sa.Text(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_centralexport_request_id"), "centralexport", ["request_id"])
    op.create_index(op.f("ix_centralexport_recording_id"), "centralexport", ["recording_id"])
    refuse_changes(*GUARDED)


def downgrade() -> None:
    for table in ("centralexport", "centralexportdecision", "centralexportrequest"):
        op.drop_table(table)  # indexes and guard triggers go with the tables
