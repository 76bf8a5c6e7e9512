"""The center's index of every station's renditions: ``centralrendition``
(archive/witness/index.py), append-only, filled from the mirrored ``rendition.make``
events already held.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. The center plays a station's footage
from the object store by the rendition's signed manifest (its BLAKE3 is in the event);
without this table that would mean scanning a station's whole mirrored log.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import refuse_changes

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# subjects are ["recording:<id>", "rendition:<id>"]; details a JSON object (text).
_FIELD = {"sqlite": "json_extract({col}, '{path}')",
          "postgresql": "(CAST({col} AS json) #>> '{pg}')"}


def _field(dialect: str, col: str, path: str, pg: str) -> str:
    return _FIELD[dialect].format(col=col, path=path, pg=pg)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "centralrendition",
        sa.Column("station_id", sa.String(), nullable=False),
        sa.Column("rendition_id", sa.String(), nullable=False),
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("manifest", sa.String(), nullable=True),
        sa.Column("merkle_root", sa.String(), nullable=True),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", "rendition_id"),
    )
    op.create_index(op.f("ix_centralrendition_recording_id"), "centralrendition",
                    ["recording_id"], unique=False)
    rec = _field(dialect, "subjects", "$[0]", "{0}")
    rend = _field(dialect, "subjects", "$[1]", "{1}")
    op.execute(
        "INSERT INTO centralrendition (station_id, rendition_id, recording_id, status, "
        "manifest, merkle_root, made_at) SELECT station_id, "
        f"substr({rend}, 11), substr({rec}, 11), "
        f"coalesce({_field(dialect, 'details', '$.status', '{status}')}, ''), "
        f"{_field(dialect, 'details', '$.manifest', '{manifest}')}, "
        f"{_field(dialect, 'details', '$.merkle_root', '{merkle_root}')}, at "
        "FROM stationevent WHERE action = 'rendition.make' "
        f"AND {rec} LIKE 'recording:%' AND {rend} LIKE 'rendition:%'")
    refuse_changes("centralrendition")


def downgrade() -> None:
    op.drop_index(op.f("ix_centralrendition_recording_id"), table_name="centralrendition")
    op.drop_table("centralrendition")
