"""${message}

Revision ID: ${up_revision}
Revises:${" " + str(down_revision) if down_revision else ""}
Create Date: ${create_date}

Frozen DDL: plain ``op`` calls, no model imports (the models will have moved on). A new
append-only table gets its triggers here too (``guards.refuse_changes``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    ${downgrades if downgrades else "pass"}
