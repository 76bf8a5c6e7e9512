"""The catalog on a real PostgreSQL server started for this test run (initdb + pg_ctl in a
temporary directory, unix socket only): schema, an ingest with audit events, a signed head,
fixity, gap-free concurrent appends, and triggers refusing UPDATE/DELETE/TRUNCATE."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0
from evidock_testing import migrated, open_services
from pg_support import connect, pg_cluster, psycopg
from sqlmodel import Session, col, select

from archive.audit.log import AuditLog, HeadSigner
from archive.audit.verify import verify_log
from archive.catalog import Catalog
from archive.catalog.models import Seal
from archive.fixity import Fixity, FixityPlan
from config import load_settings
from evidock.schema import append_only, metadata
from evidock.wiring import Services
from ingest.offload import Offloader
from ingest.outcome import OffloadRequest


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    with pg_cluster() as make:
        yield make


@pytest.fixture
def pg_services(new_database: Callable[[], str], tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(environ={"EVIDOCK_HOME": str(tmp_path / "home"),
                                      "EVIDOCK_PATHS__CATALOG_URL": new_database()})
    svc = open_services(settings)
    svc.keys.init()
    yield svc
    svc.close()


def _audit(svc: Services) -> AuditLog:
    return AuditLog(catalog=svc.catalog, signer=HeadSigner(keys=svc.keys,
                                                           station_id="station-01"))


def _ingest(svc: Services, camera: Path) -> AuditLog:
    audit = _audit(svc)
    ticks = iter(range(10**6))
    report = Offloader(settings=svc.settings, store=svc.store, catalog=svc.catalog,
                       prober=svc.prober, clock=lambda: T0 + timedelta(seconds=next(ticks)),
                       audit=audit).run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                       wipe_after_verify=True))
    assert report.outcome == "completed", (report.error,
                                           [(f.display, f.code) for f in report.files])
    return audit


def test_ingest_audit_and_fixity_on_postgres(pg_services: Services, camera: Path) -> None:
    assert pg_services.catalog.engine.dialect.name == "postgresql"
    audit = _ingest(pg_services, camera)
    assert len(pg_services.catalog.recordings()) > 0 and pg_services.catalog.wipes()
    assert audit.heads(), "the offload signed a head at its end"
    report = verify_log(pg_services.catalog.engine, keyring=pg_services.keys.keyring())
    assert report.ok, report.findings
    actions = [audit.event(i).action for i in range(report.events)]  # type: ignore[union-attr]
    assert actions[0] == "dock.session.start" and "ingest.wipe" in actions
    fixity = Fixity(catalog=pg_services.catalog, store=pg_services.store, audit=audit,
                    clock=lambda: T0)
    with Session(pg_services.catalog.engine) as s:  # signed records are blobs too
        sealed = set(s.exec(select(col(Seal.blake3))))
    run = fixity.run(FixityPlan("all"), actor="u")
    assert run.checked == len({r.blake3 for r in pg_services.catalog.recordings()} | sealed)
    assert run.findings == (), "the catalog agrees with every signed record"
    again = Fixity(catalog=pg_services.catalog, store=pg_services.store, audit=audit,
                   clock=lambda: T0 + timedelta(days=1))
    sample = again.select(FixityPlan("sample", seed=3, sample=2))
    assert len(sample) == 2 and all(r.last_proven == T0 for r in sample)


def test_triggers_refuse_update_delete_truncate_on_postgres(pg_services: Services,
                                                            camera: Path) -> None:
    audit = _ingest(pg_services, camera)
    Fixity(catalog=pg_services.catalog, store=pg_services.store, audit=audit,
           clock=lambda: T0).run(FixityPlan("all"), actor="u")
    with connect(pg_services.catalog.engine.url) as conn:
        for table in append_only(metadata()):
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            statements = [f"TRUNCATE {table} CASCADE"]
            if count:  # row triggers fire only on rows
                statements += [f"DELETE FROM {table}",
                               f"UPDATE {table} SET {_column(conn, table)} = "
                               f"{_column(conn, table)}"]
            for sql in statements:
                with pytest.raises(psycopg().errors.RaiseException, match="append-only"):
                    conn.execute(sql)
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == count
        for table in ("auditevent", "treehead", "fixitycheck", "blob", "recording", "wipe"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0, table


def _column(conn: object, table: str) -> str:
    row = conn.execute(  # type: ignore[attr-defined]
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
        "ORDER BY ordinal_position LIMIT 1", (table,)).fetchone()
    return str(row[0])


def test_concurrent_appends_stay_gap_free_on_postgres(new_database: Callable[[], str],
                                                      ) -> None:
    url = migrated(new_database())
    catalogs = [Catalog.open(url) for _ in range(3)]
    go = threading.Barrier(3)
    errors: list[BaseException] = []

    def writer(catalog: Catalog, name: str) -> None:
        log = AuditLog(catalog=catalog)
        go.wait()
        try:
            for i in range(40):
                log.record(actor=name, action="view", subjects=[f"{name}{i}"],
                           details={"i": i}, at=T0)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c, f"w{i}"))
               for i, c in enumerate(catalogs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    report = verify_log(catalogs[0].engine, keyring=None)
    assert report.ok and report.events == 120
    for c in catalogs:
        c.close()


def test_a_writer_waits_at_begin_for_the_writer_before_it(pg_services: Services) -> None:
    """PostgreSQL writers queue when their transaction begins, as SQLite's BEGIN
    IMMEDIATE makes them: a second write transaction cannot read the catalog (and decide
    "no such blob row: insert it") while the first is open, so two writers of the same
    blob never collide on its key. Readers are not held up."""
    from archive.catalog.models import Blob

    catalog, key = pg_services.catalog, "b" * 64
    read: list[bool] = []

    def second() -> None:
        with catalog.transaction() as s:
            read.append(s.get(Blob, key) is not None)  # its first statement: waits

    with catalog.transaction() as s:
        s.add(Blob(blake3=key, sha256="c" * 64, size=1, stored_at=T0))
        s.flush()
        thread = threading.Thread(target=second)
        thread.start()
        with connect(catalog.engine.url) as watch:  # until the second waits on our lock
            while not watch.execute("SELECT count(*) FROM pg_locks WHERE locktype = "
                                    "'advisory' AND NOT granted").fetchone()[0]:
                assert thread.is_alive()
        assert read == []  # it has not read yet
        with Session(catalog.engine) as reader:  # a reader is not held up
            assert reader.get(Blob, key) is None
    thread.join(timeout=60)
    assert read == [True]  # it read after our commit, and saw our row
