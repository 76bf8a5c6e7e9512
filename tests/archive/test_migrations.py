"""The catalog schema under Alembic, on SQLite and on a real PostgreSQL server: the chain
upgrades a catalog keeping its rows, the result is exactly what the models expect, every
append-only table refuses changes, out-of-date catalogs are refused with the command that
fixes them, and `evidock admin migrate` does it from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from audit_support import run_together
from evidock_testing import REPO, ok_json, run_evidock
from pg_support import pg_cluster
from sqlalchemy import Table, create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from archive.audit.log import AuditLog
from archive.catalog import Catalog, migrations
from archive.catalog.db import make_engine
from config import load_settings
from evidock.schema import TABLE_MODULES, append_only, metadata
from evidock.wiring import Services
from integrity.errors import CatalogError, SchemaOutdated

B3 = "b" * 64
AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty catalog database (no schema yet)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    make: Callable[[], str] = request.getfixturevalue("pg")
    return make()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    eng = make_engine(url)
    yield eng
    eng.dispose()


def _legacy(engine: Engine) -> None:
    """A catalog as evidock made it before migrations: the baseline's tables and
    triggers (create_all), no revision recorded."""
    migrations.upgrade(engine, migrations.BASELINE)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


def _rows(engine: Engine) -> None:
    # Columns of the baseline revision (0001), which later revisions must keep working.
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO device (serial, camera_model, first_seen) "
                          "VALUES ('ZFY0001', 'DSJ-A', :at)"), {"at": AT})
        conn.execute(text("INSERT INTO blob (blake3, sha256, size, stored_at) "
                          "VALUES (:b3, :sha, 5000000000, :at)"),
                     {"b3": B3, "sha": "a" * 64, "at": AT})


def _check_rows(url: str) -> None:
    catalog = Catalog.open(url)
    try:
        blob = catalog.blob(B3)
        assert blob is not None and blob.size == 5_000_000_000, "a size past 32 bits"
        assert blob.stored_at == AT
    finally:
        catalog.close()


def test_the_chain_is_linear_and_head_is_its_newest_revision() -> None:
    chain = migrations.chain()
    assert chain[0] == migrations.BASELINE and len(set(chain)) == len(chain)
    assert chain[-1] == migrations.HEAD, (
        "a new revision: set HEAD in archive/catalog/migrations/__init__.py")


def test_first_revision_upgrades_to_head_keeping_rows(url: str, engine: Engine) -> None:
    first, *later = migrations.chain()
    made = migrations.upgrade(engine, first)
    assert (made.from_revision, made.to_revision, made.applied) == (None, first, (first,))
    _rows(engine)
    if later:  # between revisions, the catalog is refused until migrated
        with pytest.raises(SchemaOutdated, match="evidock admin migrate"):
            Catalog.open(url)
    done = migrations.upgrade(engine)
    assert (done.from_revision, done.to_revision) == (first, migrations.head())
    assert done.applied == tuple(later) and not done.adopted
    _check_rows(url)
    again = migrations.upgrade(engine)
    assert not again.changed and again.from_revision == again.to_revision == migrations.head()


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    migrations.upgrade(engine)
    with engine.begin() as conn:  # APScheduler's job store lives here too; not ours
        conn.execute(text("CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, "
                          "next_run_time FLOAT, job_state BYTEA)"
                          if conn.dialect.name == "postgresql" else
                          "CREATE TABLE apscheduler_jobs (id VARCHAR(191) PRIMARY KEY, "
                          "next_run_time FLOAT, job_state BLOB)"))
    meta = metadata()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={
            "include_name": lambda name, kind, _p: not (
                kind == "table" and name in migrations.FOREIGN_TABLES),
            "compare_type": True})
        assert compare_metadata(ctx, meta) == []
        tables = set(inspect(conn).get_table_names())
    assert tables - {"alembic_version", "apscheduler_jobs"} == set(meta.tables)
    assert {"casefile", "hold", "fixitycheck", "uploaditem", "auditevent"} <= tables, (
        "tables of every layer, registered in evidock.schema", TABLE_MODULES)
    # 64-bit where it matters: a file size, a nanosecond mtime
    size = meta.tables["recording"].c.size.type
    assert size.compile(dialect=engine.dialect) == "BIGINT"


def _value(column: Any) -> object:
    stored = getattr(column.type, "impl_instance", column.type)  # our TypeDecorators
    kind = stored.python_type
    return {int: 1, str: "x", bool: True, float: 1.5, bytes: b"x", datetime: AT}[kind]


def _plain(url: str) -> Engine:
    # A bare engine: no evidock pragmas, so SQLite leaves foreign keys off for the dummy
    # rows below (PostgreSQL: replica role, which skips FK checks while inserting).
    return create_engine(url)


def test_every_append_only_table_refuses_changes(url: str, engine: Engine) -> None:
    migrations.upgrade(engine)
    meta = metadata()
    guarded = append_only(meta)
    assert {"blob", "recording", "auditevent", "casefile", "hold", "tombstone"} <= set(
        guarded)
    assert _triggered(engine) == set(guarded), "triggers on exactly the append-only tables"
    kept = {"docksession", "uploaditem", "recordingstat", "centralcase", "centrallink",
            "stationfrontier"}
    assert _kept(engine) == kept, "the others: guarded columns"
    assert set(meta.tables) - set(guarded) == kept, "none unguarded"
    assert sorted(t.name for t in meta.sorted_tables if t.info.get("derived")) == [
        "centralcase", "centrallink", "recordingstat", "stationfrontier"]
    plain = _plain(url)
    try:
        with plain.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET LOCAL session_replication_role = replica"))
            for name in (*guarded, "docksession"):
                table: Table = meta.tables[name]
                open_ = {"outcome": None, "ended_at": None} if name == "docksession" else {}
                conn.execute(table.insert().values(
                    {c.name: _value(c) for c in table.c} | open_))
        for name in guarded:
            column = next(iter(meta.tables[name].c)).name
            refused = [f"UPDATE {name} SET {column} = {column}", f"DELETE FROM {name}"]
            if plain.dialect.name == "postgresql":
                refused.append(f"TRUNCATE {name} CASCADE")
            for sql in refused:
                with pytest.raises(DBAPIError, match="append-only"), plain.begin() as conn:
                    conn.execute(text(sql))
            with plain.connect() as conn:
                assert conn.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 1
        _closes_once(plain)
        _derived_facts_are_kept(plain)
        _central_index_is_kept(plain)
    finally:
        plain.dispose()


def _derived_facts_are_kept(plain: Engine) -> None:
    """Statistics facts: never deleted, their identity and times never change; only the
    counts the triggers refresh do."""
    with plain.begin() as conn:
        if conn.dialect.name == "postgresql":  # replica role made no row: make it
            conn.execute(text("INSERT INTO recordingstat (recording_id, recorded_at, "
                              "offloaded_s, links) VALUES ('x', :at, 0, 0)"), {"at": AT})
        conn.execute(text("UPDATE recordingstat SET seconds = 7.5, links = links + 1"))
    for sql in ("DELETE FROM recordingstat", "UPDATE recordingstat SET officer_id = 'P9'",
                "UPDATE recordingstat SET recorded_at = NULL",
                "UPDATE recordingstat SET offloaded_s = offloaded_s + 1"):
        with pytest.raises(DBAPIError, match="evidock: recordingstat"), \
                plain.begin() as conn:
            conn.execute(text(sql))
    with plain.connect() as conn:
        assert conn.execute(text("SELECT count(*), max(seconds) FROM recordingstat")).one() \
            == (1, 7.5)


def _central_index_is_kept(plain: Engine) -> None:
    """The center's index: a case's label and a link's state change, nothing else."""
    with plain.begin() as conn:
        conn.execute(text("INSERT INTO centralcase VALUES ('s', 'c', 'N', NULL, 'u', "
                          "'none', :at)"), {"at": AT})
        conn.execute(text("INSERT INTO centrallink VALUES ('s', 1, 'c', 'r', NULL, :t)"),
                     {"t": True})
        conn.execute(text("UPDATE centralcase SET sensitivity = '个人隐私'"))
        conn.execute(text("UPDATE centrallink SET active = :f"), {"f": False})
    for sql in ("UPDATE centralcase SET unit = 'other'", "DELETE FROM centralcase",
                "UPDATE centrallink SET recording_id = 'r2'", "DELETE FROM centrallink"):
        with pytest.raises(DBAPIError, match="evidock: central"), plain.begin() as conn:
            conn.execute(text(sql))


def _closes_once(plain: Engine) -> None:
    """A dock session is closed once; then nothing of it changes, and it never goes."""
    for sql in ("UPDATE docksession SET officer_id = 'P999', outcome = 'completed'",
                "DELETE FROM docksession"):
        with pytest.raises(DBAPIError, match="evidock: docksession"), plain.begin() as conn:
            conn.execute(text(sql))
    with plain.begin() as conn:
        conn.execute(text("UPDATE docksession SET outcome = 'completed', ended_at = "
                          "started_at, error_code = NULL"))
        assert conn.execute(text("SELECT outcome FROM docksession")).scalar() == "completed"
    for sql in ("UPDATE docksession SET outcome = 'failed'",
                "UPDATE docksession SET ended_at = NULL, outcome = NULL"):
        with pytest.raises(DBAPIError, match="evidock: docksession"), plain.begin() as conn:
            conn.execute(text(sql))


def _triggered(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT tbl_name, name FROM sqlite_master "
                                     "WHERE type = 'trigger'")).all()
            by_table: dict[str, set[str]] = {}
            for table, name in rows:
                by_table.setdefault(table, set()).add(name)
            return {t for t, v in by_table.items()
                    if _guards(v) == {f"no_update_{t}", f"no_delete_{t}"}}
        rows = conn.execute(text("SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class "
                                 "c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal")).all()
        by_table = {}
        for table, name in rows:
            by_table.setdefault(table, set()).add(name)
        return {t for t, v in by_table.items()
                if _guards(v) == {f"no_change_{t}", f"no_truncate_{t}"}}


def _guards(names: set[str]) -> set[str]:
    """The guarding triggers among a table's triggers (not those keeping statistics
    facts: migration 0015)."""
    facts = {"stat_on_recording", "stat_on_footage", "stat_on_link"}
    return names - facts


def _kept(engine: Engine) -> set[str]:
    """Tables guarded column by column (never deleted; some columns never change)."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            rows = conn.execute(text("SELECT tbl_name, name FROM sqlite_master "
                                     "WHERE type = 'trigger'")).all()
        else:
            rows = conn.execute(text("SELECT c.relname, t.tgname FROM pg_trigger t JOIN "
                                     "pg_class c ON c.oid = t.tgrelid "
                                     "WHERE NOT t.tgisinternal")).all()
    return {t for t, name in rows if name == f"keep_{t}"}


def test_open_refuses_an_empty_catalog_naming_init(url: str, engine: Engine) -> None:
    with engine.connect():
        pass  # the database exists (SQLite: an empty file), without any schema
    with pytest.raises(SchemaOutdated, match=r"has no schema: run `evidock init`") as err:
        Catalog.open(url)
    assert err.value.code == "E_SCHEMA_OUTDATED"
    assert err.value.details["head"] == migrations.head()
    assert Catalog.revision(url) == (None, migrations.head())


def test_open_refuses_a_catalog_from_before_migrations_then_adopts_it(
        url: str, engine: Engine) -> None:
    _legacy(engine)
    _rows(engine)
    with pytest.raises(SchemaOutdated, match="before schema migrations: run `evidock admin "
                                             "migrate`") as err:
        Catalog.open(url)
    assert err.value.to_dict()["code"] == "E_SCHEMA_OUTDATED"
    done = Catalog.migrate(url)
    assert done.adopted and done.from_revision is None
    assert done.to_revision == migrations.head()
    _check_rows(url)
    assert _triggered(engine) == set(append_only(metadata()))


def test_a_catalog_from_a_newer_evidock_is_refused_not_touched(url: str,
                                                               engine: Engine) -> None:
    migrations.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    for attempt in (Catalog.open, Catalog.migrate):
        with pytest.raises(CatalogError, match="newer evidock") as err:
            attempt(url)
        assert not isinstance(err.value, SchemaOutdated)
    assert Catalog.revision(url) == ("9999", migrations.head())


def test_a_missing_sqlite_catalog_is_refused_and_not_created(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    settings = load_settings(environ={"EVIDOCK_HOME": str(home)})
    with pytest.raises(SchemaOutdated, match="evidock init"):
        Services.from_config(settings)
    assert not home.exists(), "refusing leaves nothing behind"


def test_a_legacy_catalog_unlike_the_baseline_is_not_adopted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    engine = make_engine(url)
    try:
        _legacy(engine)
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE tombstone"))
        with pytest.raises(CatalogError, match=r"not those of revision 0001.*tombstone"):
            Catalog.migrate(url)
        assert Catalog.revision(url) == (None, migrations.head())
        with engine.connect() as conn:
            assert "alembic_version" not in inspect(conn).get_table_names()
    finally:
        engine.dispose()


_MIGRATOR = textwrap.dedent("""
    import sys
    from archive.catalog import Catalog
    print("ready", flush=True)
    sys.stdin.readline()
    print(len(Catalog.migrate(sys.argv[1]).applied), flush=True)
""")


def test_two_processes_migrating_a_new_catalog_do_not_race(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATOR, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO) for _ in range(2)]
    applied = run_together(procs, timeout=120)
    assert sorted(applied) == ["0", str(len(migrations.chain()))], "one migrated, one waited"
    Catalog.open(url).close()


def test_admin_migrate_on_an_old_catalog_through_the_cli(tmp_path: Path) -> None:
    home = tmp_path / "home"
    engine = make_engine(f"sqlite:///{home / 'catalog.sqlite3'}")
    try:
        _legacy(engine)
        _rows(engine)
    finally:
        engine.dispose()
    refused = run_evidock(home, "scheduler", "jobs", "--json")  # opens the catalog itself
    assert ok_json(refused, 2)["error"]["code"] == "E_SCHEMA_OUTDATED"
    assert "evidock admin migrate" in json.loads(refused.stdout)["error"]["message"]
    before = run_evidock(home, "admin", "migrate", "--check")
    assert before.returncode == 1 and "out of date: run `evidock admin migrate`" in before.stdout
    done = ok_json(run_evidock(home, "admin", "migrate", "--json"))
    assert done["from"] is None and done["to"] == migrations.head() and done["adopted"]
    after = run_evidock(home, "admin", "migrate")
    assert after.returncode == 0, after.stderr
    assert f"at {migrations.head()}, nothing to do" in after.stdout
    url = f"sqlite:///{home / 'catalog.sqlite3'}"
    _check_rows(url)
    catalog = Catalog.open(url)
    try:
        log = AuditLog(catalog=catalog)
        events = [log.event(i) for i in range(log.size())]
    finally:
        catalog.close()
    assert [(e.action, e.details["to"], e.details["adopted"]) for e in events if e] == [
        ("catalog.migrate", migrations.head(), True)], "the upgrade is an audited event"


def test_central_renditions_are_backfilled_from_the_mirror(engine: Engine) -> None:
    """0017 fills ``centralrendition`` from the ``rendition.make`` events a center already
    mirrors (the JSON read differs between SQLite and PostgreSQL); the projection of new
    events gives the same rows."""
    from alembic import command

    from archive.audit.rows import EventSpec
    from archive.catalog.db import writer
    from archive.catalog.migrations import config as migration_config
    from archive.witness.index import CentralRendition, project
    from archive.witness.mirror import Incoming, Mirror

    def made(seq: int, rec: str, rend: str, manifest: str | None) -> Incoming:
        return Incoming(seq, EventSpec("station:s1", "rendition.make",
                                       [f"recording:{rec}", f"rendition:{rend}"],
                                       {"status": "ok" if manifest else "failed",
                                        "manifest": manifest, "merkle_root": None}, AT),
                        "0" * 64, f"{seq:064x}")

    events = [made(0, "r1", "n1", "ab" * 32), made(1, "r2", "n2", None)]
    migrations.upgrade(engine)
    with writer(engine).begin() as conn:
        command.downgrade(migration_config(conn), "0016")
    with writer(engine).begin() as conn:
        Mirror.insert(conn, "s1", events, AT)
        command.upgrade(migration_config(conn), "head")
    table = CentralRendition.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        backfilled = sorted(tuple(r) for r in conn.execute(table.select()))
    with writer(engine).begin() as conn:
        project(conn, "s2", events)
    with engine.connect() as conn:
        projected = sorted(tuple(r)[1:] for r in conn.execute(
            table.select().where(table.c.station_id == "s2")))
    assert [r[1:] for r in backfilled] == projected
    assert [(r[1], r[2], r[3], r[4]) for r in backfilled] == [
        ("n1", "r1", "ok", "ab" * 32), ("n2", "r2", "failed", None)]
