"""The catalog schema: one chain of Alembic revisions for SQLite and PostgreSQL.

Opening a catalog only checks its revision (:func:`require_head`); ``evidock init`` and
``evidock admin migrate`` apply the chain (:func:`upgrade`). The revisions are frozen DDL
in ``versions/``; ``evidock/schema.py`` lists the models they must match.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError

from archive.catalog.db import make_engine, writer
from integrity.errors import CatalogError, SchemaOutdated

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

DIR = Path(__file__).resolve().parent
#: The newest revision in ``versions/``. Opening a catalog compares with this without
#: loading Alembic (~85 ms of every command's start-up); a test checks it is the head.
HEAD = "0022"
#: The revision a catalog made before migrations existed (by ``create_all``) is at.
BASELINE = "0001"
#: Tables in the catalog database that are not ours (APScheduler's job store).
FOREIGN_TABLES = frozenset({"apscheduler_jobs"})
_VERSION_TABLE = "alembic_version"
# Transaction-scoped advisory lock serialising migrations on PostgreSQL ("evmg"); on
# SQLite the write transaction (BEGIN IMMEDIATE) does it.
_PG_LOCK_KEY = 0x65766D67


@dataclass(frozen=True)
class Migrated:
    """What one upgrade did. ``from_revision`` None: the catalog had no schema."""

    catalog: str
    from_revision: str | None
    to_revision: str
    applied: tuple[str, ...]
    #: made before migrations existed, recognised as :data:`BASELINE` and stamped
    adopted: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.adopted

    def to_json(self) -> dict[str, object]:
        return {"catalog": self.catalog, "from": self.from_revision, "to": self.to_revision,
                "applied": list(self.applied), "adopted": self.adopted,
                "changed": self.changed}


def config(connection: Connection, *, target_metadata: MetaData | None = None,
           exclude: frozenset[str] = FOREIGN_TABLES) -> Config:
    """An Alembic config without alembic.ini, running on ``connection`` (see env.py)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(DIR))
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes.update(connection=connection, target_metadata=target_metadata,
                          exclude=exclude)
    return cfg


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(DIR))


def chain() -> tuple[str, ...]:
    """Every revision, oldest first (one line of them: a branch is an error to merge)."""
    script = _script()
    heads = script.get_heads()
    if len(heads) != 1:
        raise CatalogError(f"the schema migrations have {len(heads)} heads {heads}: "
                           "merge them into one line", heads=list(heads))
    return tuple(reversed([s.revision for s in script.walk_revisions()]))


def head() -> str:
    return HEAD


def shown(url: str) -> str:
    """The catalog URL as it may be printed (no password)."""
    return make_url(url).render_as_string(hide_password=True)


def current(conn: Connection) -> str | None:
    """The catalog's revision; None when it has none (empty, or made before migrations)."""
    if not inspect(conn).has_table(_VERSION_TABLE):
        return None
    found = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}")).scalars().all()
    if len(found) > 1:  # the chain is linear: several heads mean someone else's hands
        raise CatalogError(f"catalog has several schema revisions: {found}",
                           revisions=list(found))
    return str(found[0]) if found else None


@contextmanager
def _creation_lock(engine: Engine) -> Iterator[None]:
    """For a SQLite file, an exclusive flock beside it while migrating.

    A new SQLite file is switched to WAL by the first connection; two processes doing
    that at once can get SQLITE_BUSY without the busy handler ever waiting (SQLite's
    deadlock avoidance when a reader must escalate), so BEGIN IMMEDIATE alone does not
    order them. PostgreSQL is ordered by the advisory lock in :func:`upgrade`.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def upgrade(engine: Engine, revision: str = "head") -> Migrated:
    """Apply the chain up to ``revision`` in one write transaction (all or nothing).

    Two processes migrating at once do not race: the second waits for the first's lock
    and then finds nothing to do.
    """
    from alembic import command
    from alembic.util import CommandError

    url = engine.url.render_as_string(hide_password=True)
    try:
        with _creation_lock(engine), writer(engine).begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
            before = current(conn)
            _known(before, url)
            adopted = before is None and _adopt(conn, url)
            command.upgrade(config(conn), revision)
            after = current(conn)
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot migrate catalog {url}: {exc}", catalog=url) from exc
    except CommandError as exc:
        raise CatalogError(f"cannot migrate catalog {url} to {revision}: {exc}",
                           catalog=url, revision=revision) from exc
    if after is None:
        raise CatalogError(f"catalog {url} has no revision after migrating", catalog=url)
    revs = chain()
    start = revs.index(before) + 1 if before is not None else 0
    applied = revs[start:revs.index(after) + 1]
    return Migrated(url, before, after, applied if not adopted else applied[1:], adopted)


def require_head(engine: Engine) -> str:
    """The catalog's revision, refused unless it is this evidock's head."""
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            rev = current(conn)
            tables = set(inspect(conn).get_table_names()) if rev is None else set()
    except SQLAlchemyError as exc:
        raise CatalogError(f"cannot read catalog {url}: {exc}", catalog=url) from exc
    if rev == head():
        return rev
    _known(rev, url)
    if rev is None and tables - FOREIGN_TABLES - {_VERSION_TABLE}:
        raise SchemaOutdated(f"catalog {url} was made before schema migrations: run "
                             "`evidock admin migrate`", catalog=url, revision=None,
                             head=head())
    if rev is None:
        raise uninitialised(url)
    raise SchemaOutdated(f"catalog {url} is at schema revision {rev}, this evidock needs "
                         f"{head()}: run `evidock admin migrate`", catalog=url,
                         revision=rev, head=head())


def uninitialised(url: str) -> SchemaOutdated:
    return SchemaOutdated(f"catalog {url} has no schema: run `evidock init` for a new "
                          "station", catalog=url, revision=None, head=head())


def _known(rev: str | None, url: str) -> None:
    if rev is not None and rev not in chain():
        raise CatalogError(f"catalog {url} is at schema revision {rev}, unknown to this "
                           f"evidock (head {head()}): it was migrated by a newer evidock",
                           catalog=url, revision=rev, head=head())


def _adopt(conn: Connection, url: str) -> bool:
    """Stamp a catalog made before migrations at :data:`BASELINE` if it is one.

    Its tables and columns must be exactly those of the baseline; its triggers are
    (re)made, idempotently, so nothing is left unguarded.
    """
    from alembic import command

    from archive.catalog.migrations.guards import guard_sql

    insp = inspect(conn)
    tables = set(insp.get_table_names()) - FOREIGN_TABLES - {_VERSION_TABLE}
    if not tables:
        return False
    found = {t: frozenset(c["name"] for c in insp.get_columns(t)) for t in tables}
    expected = _baseline_columns()
    if found != expected:
        differ = sorted(t for t in found.keys() | expected.keys()
                        if found.get(t) != expected.get(t))
        raise CatalogError(f"catalog {url} has tables but no schema revision, and they "
                           f"are not those of revision {BASELINE} (differ: {differ}); "
                           "not touched", catalog=url, tables=differ)
    guarded: tuple[str, ...] = _script().get_revision(BASELINE).module.GUARDED
    for table in guarded:
        for stmt in guard_sql(conn.dialect.name, table):
            conn.execute(text(stmt))
    command.stamp(config(conn), BASELINE)
    return True


@cache
def _baseline_columns() -> dict[str, frozenset[str]]:
    """Tables and columns :data:`BASELINE` creates (run on a scratch in-memory SQLite)."""
    scratch = make_engine("sqlite://")
    try:
        upgrade(scratch, BASELINE)
        with scratch.connect() as conn:
            insp = inspect(conn)
            return {t: frozenset(c["name"] for c in insp.get_columns(t))
                    for t in insp.get_table_names() if t != _VERSION_TABLE}
    finally:
        scratch.dispose()
