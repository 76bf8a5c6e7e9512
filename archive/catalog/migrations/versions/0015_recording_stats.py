"""Statistics facts per recording: the ``recordingstat`` table (records/statistics_facts.py),
kept by triggers and backfilled from the tables it summarises.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04

Frozen DDL: plain ``op`` calls, no model imports. A statistics pass at 10⁵ recordings
spent most of its time on per-recording lookups (footage, links, dock session) in
random order (issue 13's desk benchmark): the facts are now one row per recording.
Triggers keep them, so every write path does, on both dialects:

- a recording's insert makes its row (the dock session's start read then: the session
  row exists first, its foreign key says so, and ``started_at`` never changes);
- an ok rendition's footage row refreshes ``seconds``;
- a link or unlink row refreshes ``links`` of the recordings it names.

Guarded: never deleted, and only ``seconds`` and ``links`` change. ``caselink.unlinks``
gets an index: counting a recording's active links looks unlinks up by the link.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from archive.catalog.migrations.guards import keep_columns

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

FIXED = ("recording_id", "officer_id", "recorded_at", "start_s", "offloaded_s")

_EPOCH = {
    "sqlite": "((julianday({}) - 2440587.5) * 86400.0)",
    "postgresql": "CAST(EXTRACT(EPOCH FROM {}) AS DOUBLE PRECISION)",
}
_SECONDS = ("(SELECT coalesce(max(f.segments_s), max(f.probed_s)) FROM renditionfootage f "
            "WHERE f.recording_id = {})")
_LINKS = ("(SELECT count(*) FROM caselink l WHERE l.recording_id = {} AND l.action = 'link' "
          "AND NOT EXISTS (SELECT 1 FROM caselink u WHERE u.unlinks = l.id "
          "AND u.action = 'unlink'))")
_COLUMNS = "recording_id, officer_id, recorded_at, start_s, offloaded_s, seconds, links"


def _facts(dialect: str, r: str, started: str) -> str:
    """The select list of a recording's facts (``r``: its row, ``started``: its dock
    session's start)."""
    epoch = _EPOCH[dialect]
    return (f"{r}.id, {r}.officer_id, coalesce({r}.camera_start, {r}.ingested_at), "
            f"{epoch.format(f'{r}.camera_start')}, "
            f"{epoch.format(f'coalesce({started}, {r}.ingested_at)')}, "
            f"{_SECONDS.format(f'{r}.id')}, {_LINKS.format(f'{r}.id')}")


_ON_RECORDING = (
    "INSERT INTO recordingstat ({cols}) SELECT {facts}")
_ON_FOOTAGE = (
    "UPDATE recordingstat SET seconds = {seconds} WHERE recording_id = NEW.recording_id")
# IN, not OR: SQLite then looks both up by key instead of scanning the table.
_ON_LINK = (
    "UPDATE recordingstat SET links = {links} WHERE recording_id IN (NEW.recording_id, "
    "(SELECT n.recording_id FROM caselink n WHERE n.id = NEW.unlinks))")

_TRIGGERS = (("stat_on_recording", "recording"), ("stat_on_footage", "renditionfootage"),
             ("stat_on_link", "caselink"))


def _bodies(dialect: str) -> list[str]:
    started = "(SELECT s.started_at FROM docksession s WHERE s.id = NEW.session_id)"
    return [
        _ON_RECORDING.format(cols=_COLUMNS, facts=_facts(dialect, "NEW", started)),
        _ON_FOOTAGE.format(seconds=_SECONDS.format("NEW.recording_id")),
        _ON_LINK.format(links=_LINKS.format("recordingstat.recording_id")),
    ]


def _create_triggers(dialect: str) -> None:
    for (name, table), body in zip(_TRIGGERS, _bodies(dialect), strict=True):
        if dialect == "sqlite":
            op.execute(f"CREATE TRIGGER {name} AFTER INSERT ON {table} "
                       f"FOR EACH ROW BEGIN {body}; END")
            continue
        op.execute(f"CREATE OR REPLACE FUNCTION evidock_{name}() RETURNS trigger "
                   f"LANGUAGE plpgsql AS $$ BEGIN {body}; RETURN NULL; END $$")
        op.execute(f"CREATE TRIGGER {name} AFTER INSERT ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION evidock_{name}()")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_index(op.f("ix_caselink_unlinks"), "caselink", ["unlinks"], unique=False)
    op.create_table(
        "recordingstat",
        sa.Column("recording_id", sa.String(), nullable=False),
        sa.Column("officer_id", sa.String(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("start_s", sa.Float(), nullable=True),
        sa.Column("offloaded_s", sa.Float(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("links", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["recording_id"], ["recording.id"]),
        sa.PrimaryKeyConstraint("recording_id"),
    )
    op.execute(f"INSERT INTO recordingstat ({_COLUMNS}) SELECT "
               f"{_facts(dialect, 'r', 's.started_at')} FROM recording r "
               "LEFT JOIN docksession s ON s.id = r.session_id")
    _create_triggers(dialect)
    keep_columns("recordingstat", fixed=FIXED)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table in _TRIGGERS:
        if dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS evidock_{name}()")
    op.drop_table("recordingstat")  # its guard triggers go with it
    op.drop_index(op.f("ix_caselink_unlinks"), table_name="caselink")
