"""The camera battery read at dock: ``docksession.battery_percent``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. A vendor-command camera reports its
remaining battery (percent) when it docks (docks/zfy.py); NULL: not reported (a plain
mass-storage camera). The column is fixed like the clock drift: the dock session guard
(0003) is remade with it among the columns that never change (issue 18).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import keep_columns

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_SESSION_FIXED = ("id", "station_id", "device_serial", "officer_id", "camera_model",
                  "source", "bay", "wipe_requested", "started_at", "clock_drift_s")
_SESSION_CLOSED_BY = ("outcome", "ended_at")


def upgrade() -> None:
    op.add_column("docksession", sa.Column("battery_percent", sa.BigInteger(), nullable=True))
    _drop_keep()
    keep_columns("docksession", fixed=(*_SESSION_FIXED, "battery_percent"),
                 closed_by=_SESSION_CLOSED_BY)


def downgrade() -> None:
    _drop_keep()
    op.drop_column("docksession", "battery_percent")
    keep_columns("docksession", fixed=_SESSION_FIXED, closed_by=_SESSION_CLOSED_BY)


def _drop_keep() -> None:
    # SQLite's CREATE TRIGGER IF NOT EXISTS would keep the old guard: drop it first.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS keep_docksession ON docksession")
    else:
        op.execute("DROP TRIGGER IF EXISTS keep_docksession")
