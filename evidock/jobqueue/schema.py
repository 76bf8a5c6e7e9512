"""procrastinate's tables in the catalog database, applied idempotently when a worker
starts or a job is first queued.

Not an Alembic revision: procrastinate's DDL is the library's, changes with its version
and is upgraded by the SQL migration files it ships, while our chain is frozen DDL that
must match our models (as with APScheduler's ``scheduler_jobs``, the library owns its
tables). So the first use creates them from ``procrastinate/sql/schema.sql`` and records
the version in ``evidock_queue_schema``; a newer procrastinate later applies its own
migration files past that version. One transaction under an advisory lock: two workers
starting at once do it once, and a failure leaves nothing half made.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path

from procrastinate.schema import SchemaManager
from sqlalchemy.engine import Connection, Engine

#: Transaction-scoped advisory lock key ("evjq") serialising schema set-up.
SCHEMA_LOCK = 0x65766A71
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")
Version = tuple[int, int, int]


def _version(text: str) -> Version:
    """(3, 10, 0) of "3.10.0" or of a migration file "03.10.00_01_pre_x.sql"."""
    m = _VERSION.match(text)
    if m is None:
        raise ValueError(f"not a procrastinate version: {text!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def installed_version() -> str:
    return importlib.metadata.version("procrastinate")


def _sql(text: str) -> str:
    # The DBAPI formats the statement (psycopg's %-placeholders), as procrastinate's own
    # SchemaManager does: a literal % must be doubled.
    return text.replace("%", "%%")


def _exists(conn: Connection, table: str) -> bool:
    return bool(conn.exec_driver_sql(f"SELECT to_regclass('{table}') IS NOT NULL").scalar())


def _migrations_after(recorded: Version, installed: Version) -> list[Path]:
    directory = Path(SchemaManager.get_migrations_path())
    return [p for p in sorted(directory.glob("*.sql"))
            if recorded < _version(p.name) <= installed]


def ensure_schema(engine: Engine) -> str:
    """Create or upgrade the queue's tables; "created", "upgraded" or "current"."""
    installed = installed_version()
    with engine.begin() as conn:
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        if not _exists(conn, "evidock_queue_schema"):
            conn.exec_driver_sql("CREATE TABLE evidock_queue_schema (procrastinate text NOT "
                                 "NULL, applied_at timestamptz NOT NULL DEFAULT now())")
            if not _exists(conn, "procrastinate_jobs"):
                conn.exec_driver_sql(_sql(SchemaManager.get_schema()))
            _record(conn, installed, insert=True)
            return "created"
        recorded = str(conn.exec_driver_sql(
            "SELECT procrastinate FROM evidock_queue_schema").scalar_one())
        pending = _migrations_after(_version(recorded), _version(installed))
        for path in pending:
            conn.exec_driver_sql(_sql(path.read_text(encoding="utf-8")))
        if _version(installed) > _version(recorded):  # never recorded lower: a downgrade
            _record(conn, installed, insert=False)
        return "upgraded" if pending else "current"


def _record(conn: Connection, version: str, *, insert: bool) -> None:
    if not _VERSION.match(version):
        raise ValueError(f"not a procrastinate version: {version!r}")
    if insert:
        conn.exec_driver_sql(f"INSERT INTO evidock_queue_schema (procrastinate) "
                             f"VALUES ('{version}')")
    else:
        conn.exec_driver_sql(f"UPDATE evidock_queue_schema SET procrastinate = '{version}', "
                             "applied_at = now()")


__all__ = ["SCHEMA_LOCK", "ensure_schema", "installed_version"]
