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


_PG_KEEP = (
    "CREATE OR REPLACE FUNCTION evidock_keep() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "DECLARE c text; BEGIN FOREACH c IN ARRAY TG_ARGV LOOP "
    "IF c LIKE '!%' THEN "
    "IF coalesce(to_jsonb(OLD) -> substr(c, 2), 'null'::jsonb) <> 'null'::jsonb THEN "
    "RAISE EXCEPTION 'evidock: % row is closed (% refused)', TG_TABLE_NAME, TG_OP; END IF; "
    "ELSIF (to_jsonb(NEW) -> c) IS DISTINCT FROM (to_jsonb(OLD) -> c) THEN "
    "RAISE EXCEPTION 'evidock: %.% never changes (% refused)', TG_TABLE_NAME, c, TG_OP; "
    "END IF; END LOOP; RETURN NEW; END $$"
)


def keep_sql(dialect: str, table: str, *, fixed: tuple[str, ...],
             closed_by: tuple[str, ...] = ()) -> list[str]:
    """Statements refusing DELETE (and TRUNCATE) on ``table`` and any UPDATE that changes
    a ``fixed`` column or touches a row whose ``closed_by`` columns are set (a row that
    is closed once: a dock session)."""
    if dialect == "sqlite":
        when = " OR ".join([f"OLD.{c} IS NOT NULL" for c in closed_by] +
                           [f"NEW.{c} IS NOT OLD.{c}" for c in fixed])
        return [
            f"CREATE TRIGGER IF NOT EXISTS no_delete_{table} BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'evidock: {table} rows are never deleted "
            "(DELETE refused)'); END",
            f"CREATE TRIGGER IF NOT EXISTS keep_{table} BEFORE UPDATE ON {table} "
            f"WHEN {when} BEGIN SELECT RAISE(ABORT, 'evidock: {table} row is closed or "
            "the column never changes (UPDATE refused)'); END",
        ]
    if dialect == "postgresql":
        args = ", ".join(f"'{a}'" for a in (*(f"!{c}" for c in closed_by), *fixed))
        return [
            _PG_FUNCTION, _PG_KEEP,
            f"DROP TRIGGER IF EXISTS no_delete_{table} ON {table}",
            f"CREATE TRIGGER no_delete_{table} BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION evidock_refuse()",
            f"DROP TRIGGER IF EXISTS no_truncate_{table} ON {table}",
            f"CREATE TRIGGER no_truncate_{table} BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION evidock_refuse()",
            f"DROP TRIGGER IF EXISTS keep_{table} ON {table}",
            f"CREATE TRIGGER keep_{table} BEFORE UPDATE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION evidock_keep({args})",
        ]
    raise CatalogError(f"no guarding triggers for database {dialect!r}; "
                       "use SQLite or PostgreSQL", dialect=dialect)


def keep_columns(table: str, *, fixed: tuple[str, ...],
                 closed_by: tuple[str, ...] = ()) -> None:
    """In a revision: guard ``table`` as :func:`keep_sql` says."""
    for stmt in keep_sql(op.get_bind().dialect.name, table, fixed=fixed,
                         closed_by=closed_by):
        op.execute(stmt)
