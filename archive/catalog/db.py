"""Engine creation and schema set-up for the catalog (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Integer, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from integrity.errors import CatalogError

#: Execution option marking an engine whose transactions write (see :func:`writer`).
WRITE_OPTION = "evidock_write"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite would open transactions itself, lazily and DEFERRED; hand that to the
    # "begin" listener below so writers can take the write lock up front.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; FULL: a committed row survives power loss,
    # which matters because the camera may be wiped right after the commit.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the lock at BEGIN (IMMEDIATE): two processes never both read the
    # same audit head and then race to append, and a WAL snapshot never goes stale
    # under a writer (SQLITE_BUSY_SNAPSHOT). Readers stay DEFERRED and never block.
    immediate = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions are write transactions (SQLite: IMMEDIATE)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise CatalogError(f"cannot open catalog {parsed.render_as_string()}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _guard_sql(dialect: str, table: str) -> list[str]:
    """Triggers that refuse UPDATE and DELETE on an evidence table."""
    if dialect == "sqlite":
        return [
            f"CREATE TRIGGER IF NOT EXISTS no_{op.lower()}_{table} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'evidock: {table} is append-only ({op} refused)'); END"
            for op in ("UPDATE", "DELETE")
        ]
    if dialect == "postgresql":
        return [
            "CREATE OR REPLACE FUNCTION evidock_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'evidock: % is append-only (% refused)', "
            "TG_TABLE_NAME, TG_OP; END $$",
            f"DROP TRIGGER IF EXISTS no_change_{table} ON {table}",
            f"CREATE TRIGGER no_change_{table} BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION evidock_refuse()",
            # Row triggers do not see TRUNCATE; a statement trigger does.
            f"DROP TRIGGER IF EXISTS no_truncate_{table} ON {table}",
            f"CREATE TRIGGER no_truncate_{table} BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION evidock_refuse()",
        ]
    return []


def guarded_tables() -> tuple[str, ...]:
    """Every append-only table (marked ``info={"append_only": True}``) now registered."""
    # Imported here, not at the top, to register the vault's own tables before create_all.
    from archive import fixity  # noqa: F401
    from archive.audit import log  # noqa: F401
    from archive.replica import queue  # noqa: F401

    return tuple(t.name for t in SQLModel.metadata.sorted_tables if t.info.get("append_only"))


def _widen_integers() -> None:
    """Make every integer column that is not a primary key 64-bit.

    SQLModel maps ``int`` to INTEGER, which is 32-bit on PostgreSQL: file sizes over
    2 GiB, nanosecond mtimes and microsecond times past 35 minutes would not fit. SQLite
    stores both alike, so existing catalogs are unaffected.
    """
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if type(column.type) is Integer and not column.primary_key:
                column.type = BigInteger()


def create_schema(engine: Engine) -> None:
    """Create tables (idempotent) and the append-only guards on evidence tables."""
    tables = guarded_tables()  # also registers the audit and fixity tables
    _widen_integers()
    try:
        # One write transaction: two processes opening a new catalog do not race.
        with writer(engine).begin() as conn:
            SQLModel.metadata.create_all(conn)
            for table in tables:
                for stmt in _guard_sql(engine.dialect.name, table):
                    conn.execute(text(stmt))
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot create catalog schema: {exc}") from exc
