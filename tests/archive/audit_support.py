"""Helpers shared by the audit, tamper and fixity tests (real SQLite files, real keys)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from evidock_testing import migrated

from archive.audit.log import AuditLog, HeadSigner
from archive.catalog import Catalog
from archive.keystore import StationKeys

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def make_log(tmp: Path, *, signer: bool = True) -> AuditLog:
    catalog = Catalog.open(migrated(f"sqlite:///{tmp / 'catalog.sqlite3'}"))
    keys = StationKeys(directory=tmp / "keys")
    if signer:
        keys.init()
    return AuditLog(catalog=catalog, signer=HeadSigner(keys=keys, station_id="station-01"))


def fill(log: AuditLog, n: int, *, start: int = 0) -> None:
    """``n`` events, a few per transaction, with varied (also non-ASCII) details."""
    i = start
    while i < start + n:
        with log.catalog.transaction() as s:
            for _ in range(min(8, start + n - i)):
                log.append(s, actor="user:alice" if i % 2 else "station:station-01",
                           action=("view", "search", "export")[i % 3],
                           subjects=[f"rec-{i}"],
                           details={"n": i, "note": "现场执法" if i % 5 == 0 else "ok",
                                    "nested": {"b": [1, 2, None], "a": True}},
                           at=T0 + timedelta(seconds=i))
                i += 1


@contextmanager
def attacker(db: Path) -> Iterator[sqlite3.Connection]:
    """Raw access to the catalog file with the append-only triggers dropped, as someone
    with write access to the database file could do."""
    conn = sqlite3.connect(db, isolation_level=None)
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for name in names:
        conn.execute(f"DROP TRIGGER {name}")
    try:
        yield conn
    finally:
        conn.close()


def run_together(procs: list, *, timeout: float) -> list[str]:
    """Release child processes that each printed "ready" at once; their stdout, stripped.

    Each child waits for "go" on stdin, so both are connected before either writes.
    """
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out
        outs.append(out.strip())
    return outs
