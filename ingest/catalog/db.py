"""Engine creation and schema set-up for the catalog (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel, create_engine

from ingest.catalog import models
from integrity.errors import CatalogError


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer; FULL: a committed row survives power loss,
    # which matters because the camera may be wiped right after the commit.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


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
        ]
    return []


def create_schema(engine: Engine) -> None:
    """Create tables (idempotent) and the append-only guards on evidence tables."""
    try:
        SQLModel.metadata.create_all(engine)
        with engine.begin() as conn:
            for table in models.EVIDENCE_TABLES:
                for stmt in _guard_sql(engine.dialect.name, table):
                    conn.execute(text(stmt))
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot create catalog schema: {exc}") from exc
