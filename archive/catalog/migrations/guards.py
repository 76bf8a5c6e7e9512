"""Triggers that make a table append-only: UPDATE and DELETE (and TRUNCATE) refused.

Revisions call :func:`refuse_changes` for each new append-only table. Existing revisions
depend on what it emits: change the triggers only with a new function and a revision.
"""

from __future__ import annotations

from alembic import op

from integrity.errors import CatalogError

_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION evidock_refuse() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'evidock: % is append-only (% refused)', "
    "TG_TABLE_NAME, TG_OP; END $$"
)


def guard_sql(dialect: str, table: str) -> list[str]:
    """The statements guarding ``table``; idempotent, so a catalog made before the
    migrations existed can be given them again when it is adopted."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS no_{op_.lower()}_{table} BEFORE {op_} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'evidock: {table} is append-only ({op_} refused)'); END"
            for op_ in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            _PG_FUNCTION,
            f"DROP TRIGGER IF EXISTS no_change_{table} ON {table}",
            f"CREATE TRIGGER no_change_{table} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION evidock_refuse()",
            # Row triggers do not see TRUNCATE; a statement trigger does.
            f"DROP TRIGGER IF EXISTS no_truncate_{table} ON {table}",
            f"CREATE TRIGGER no_truncate_{table} BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION evidock_refuse()",
        ]
    # An evidence table without its guard would be a silent hole: refuse the database.
    raise CatalogError(f"no append-only triggers for database {dialect!r}; "
                       "use SQLite or PostgreSQL", dialect=dialect)


def refuse_changes(*tables: str) -> None:
    """In a revision: make each table append-only."""
    dialect = op.get_bind().dialect.name
    for table in tables:
        for stmt in guard_sql(dialect, table):
            op.execute(stmt)
