"""The catalog on a real PostgreSQL server started for this test run (initdb + pg_ctl in a
temporary directory, unix socket only): schema, an ingest with audit events, a signed head,
fixity, gap-free concurrent appends, and triggers refusing UPDATE/DELETE/TRUNCATE."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0

from archive.audit.log import AuditLog, HeadSigner
from archive.audit.verify import verify_log
from archive.catalog import Catalog
from archive.catalog.db import guarded_tables
from archive.fixity import Fixity, FixityPlan
from config import load_settings
from evidock.wiring import Services
from ingest.offload import Offloader
from ingest.outcome import OffloadRequest

psycopg = pytest.importorskip(
    "psycopg", reason="psycopg not installed: pip install 'psycopg[binary]' (dev extra)")


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _as_user() -> tuple[list[str], str | None]:
    """PostgreSQL refuses to run as root: run it as `postgres` (or `nobody`) then."""
    if os.geteuid() != 0:
        return [], None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"], name
    pytest.skip("running as root and no unprivileged user to run PostgreSQL as")


@pytest.fixture(scope="module")
def new_database() -> Iterator[Callable[[], str]]:
    """Start a throwaway cluster; yields a factory of fresh, empty databases (URLs)."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries missing: scripts/setup.sh installs the "
                    "Debian package `postgresql`")
    prefix, user = _as_user()
    base = Path(tempfile.mkdtemp(prefix="evidock-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (base, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                    "-U", "evidock", "-E", "UTF8", "--locale=C", "--no-sync"],
                   check=True, capture_output=True, env=env, timeout=120)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60",
                    "-l", str(base / "server.log"), "-o",
                    f"-k {sock} -c listen_addresses= -c fsync=off", "start"],
                   check=True, capture_output=True, env=env, timeout=120)
    counter = iter(range(1000))

    def make() -> str:
        name = f"evidock_{next(counter)}"
        with psycopg.connect(host=str(sock), user="evidock", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://evidock@/{name}?host={sock}"

    try:
        yield make
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, env=env, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_services(new_database: Callable[[], str], tmp_path: Path) -> Iterator[Services]:
    settings = load_settings(environ={"EVIDOCK_HOME": str(tmp_path / "home"),
                                      "EVIDOCK_PATHS__CATALOG_URL": new_database()})
    svc = Services.from_config(settings)
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
    assert fixity.run(FixityPlan("all"), actor="u").checked == len(
        {r.blake3 for r in pg_services.catalog.recordings()})
    again = Fixity(catalog=pg_services.catalog, store=pg_services.store, audit=audit,
                   clock=lambda: T0 + timedelta(days=1))
    sample = again.select(FixityPlan("sample", seed=3, sample=2))
    assert len(sample) == 2 and all(r.last_proven == T0 for r in sample)


def test_triggers_refuse_update_delete_truncate_on_postgres(pg_services: Services,
                                                            camera: Path) -> None:
    audit = _ingest(pg_services, camera)
    Fixity(catalog=pg_services.catalog, store=pg_services.store, audit=audit,
           clock=lambda: T0).run(FixityPlan("all"), actor="u")
    url = pg_services.catalog.engine.url
    params = {"host": url.query["host"], "user": url.username, "dbname": url.database}
    with psycopg.connect(**params, autocommit=True) as conn:
        for table in guarded_tables():
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            statements = [f"TRUNCATE {table} CASCADE"]
            if count:  # row triggers fire only on rows
                statements += [f"DELETE FROM {table}",
                               f"UPDATE {table} SET {_column(conn, table)} = "
                               f"{_column(conn, table)}"]
            for sql in statements:
                with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
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
    url = new_database()
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
