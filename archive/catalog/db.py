"""Engine creation for the catalog (SQLite by default, PostgreSQL too).

The schema is not made here: see :mod:`archive.catalog.migrations`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import create_engine

from integrity.errors import CatalogError

#: Execution option marking an engine whose transactions write (see :func:`writer`).
WRITE_OPTION = "evidock_write"


#: Pooled SQLite connections per engine: one per worker thread of the station service.
SQLITE_POOL = 48


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


#: Transaction-scoped advisory lock key ("evid") every PostgreSQL write transaction takes
#: at its start, as SQLite's BEGIN IMMEDIATE takes the write lock: writers queue before
#: they read, so "is this blob row there? then insert it" cannot race another writer
#: into a duplicate key. The audit log's append takes the same key (re-entrant).
PG_WRITE_LOCK = 0x65766964


def _postgres_begin(conn: Connection) -> None:
    if conn.get_execution_options().get(WRITE_OPTION, False):
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_WRITE_LOCK})")


def writer(engine: Engine) -> Engine:
    """The same engine, but its transactions are write transactions (SQLite: IMMEDIATE)."""
    return engine.execution_options(**{WRITE_OPTION: True})


def make_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the file's directory is created."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            # Keep a connection per request thread of the service (anyio's pool: 40)
            # instead of 5 + throw-away overflow: opening one (file, WAL pragmas) cost a
            # fifth of an audited request under load. Connections are made lazily.
            kwargs["pool_size"], kwargs["max_overflow"] = SQLITE_POOL, SQLITE_POOL // 4
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError) as exc:
        raise CatalogError(f"cannot open catalog {parsed.render_as_string()}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    elif parsed.get_backend_name() == "postgresql":
        event.listen(engine, "begin", _postgres_begin)
    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite catalog URL; None for other databases and in-memory SQLite."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
