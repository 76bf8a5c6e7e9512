"""The center's Merkle frontier of each station's mirrored log: ``stationfrontier``
(archive/witness/mirror.py).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. Judging a head at every push recomputed
the mirror's root from every leaf of the station (bench.center: 40 heads/s at 14,000
events a station, and growing with the log); the frontier, moved in the transaction that
keeps events, gives the root at the mirror's size in O(log n). Derived, so only ``size``
and ``frontier`` may change; built from the leaves the first time a station's events
are kept after this revision (no backfill needed).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import keep_columns

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stationfrontier",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("frontier", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("station_id"),
    )
    keep_columns("stationfrontier", fixed=("station_id",))


def downgrade() -> None:
    op.drop_table("stationfrontier")  # its guard triggers go with it
