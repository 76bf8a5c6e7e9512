"""An export request of a redacted derivative: ``exportoption.redaction_id``.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. A request for 信息公开 (a public
purpose) may take only an approved redaction (records/redactions.py); the option row,
written with the request and never changed (its guard stays), names which one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exportoption", sa.Column("redaction_id", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("exportoption", "redaction_id")
