"""Issue 20: the center's sweep of the object store as a queued job.

A center on a real PostgreSQL with the queue configured; its index holds two stations'
recordings (their events kept by the real Feed; the object store is the boundary: the
center's [upload] points at a port nobody listens on, so every blob is unreadable from
here). The scheduler's remote_fixity job queues one job per witnessed station instead of
sweeping in-process; a real `evidock worker` takes them and each run is the same
`fixity.remote` event an in-process sweep writes, by the worker's actor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from center_support import free_port
from evidock_testing import station_on
from sqlalchemy import text
from sqlmodel import Session, col, select
from worker_support import JOBS_TOML, Worker

from archive.audit.format import GENESIS
from archive.audit.log import AuditEvent
from archive.audit.rows import EventSpec, build_row
from archive.witness.feed import Feed
from archive.witness.mirror import Incoming
from evidock.jobs import execute
from evidock.wiring import Services

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
STATIONS = ("station-a", "station-b")


def _center_toml(tmp: Path) -> str:
    witnessed = "".join(f'\n[[witness.stations]]\nid = "{s}"\nkeyring = "{tmp / s}.json"\n'
                        for s in STATIONS)
    return JOBS_TOML + f"""
[upload]
enabled = true
endpoint_url = "http://127.0.0.1:{free_port()}"
bucket = "nowhere"
access_key_id = "k"
secret_access_key = "s"
connect_timeout_s = 1
read_timeout_s = 2
{witnessed}"""


def _offloaded(n: int) -> list[Incoming]:
    """``n`` ingest.file events of new recordings, chained as a station writes them."""
    out, prev = [], GENESIS
    for seq in range(n):
        b3, sha = f"{seq + 1:064x}", f"{seq + 7:064x}"
        spec = EventSpec("station:x", "ingest.file", ["session-1", f"rec-{seq}", b3],
                         {"path": f"DCIM/{seq}.MP4", "status": "ingested", "code": "I_OK",
                          "size": 1000 + seq, "blake3": b3, "sha256": sha, "flags": [],
                          "new_blob": True, "record": None}, T0)
        row = build_row(seq, prev, spec)
        out.append(Incoming(seq, spec, prev, row.leaf))
        prev = row.leaf
    return out


@pytest.fixture
def center(tmp_path: Path) -> Iterator[tuple[Services, dict[str, str]]]:
    home = tmp_path / "center"
    with station_on("postgresql", home, extra=_center_toml(tmp_path)) as svc:
        feed = Feed(audit=svc.audit())
        for station in STATIONS:
            feed.receive(station, _offloaded(3), check_blob=lambda _b: None,
                         actor=f"user:{station}", at=T0)
        yield svc, {"EVIDOCK_HOME": str(home),
                    "EVIDOCK_PATHS__CATALOG_URL": svc.settings.catalog_url}


def test_the_scheduler_queues_one_sweep_per_station_and_a_worker_runs_them(
        center: tuple[Services, dict[str, str]]) -> None:
    svc, env = center
    queued = execute("remote_fixity", svc)
    assert queued.outcome == "ok" and len(queued.counts["queued"]) == len(STATIONS)
    worker = Worker("w1", env).ready()
    try:
        done = {worker.wait_event("job-finished")["args"]["station_id"]
                for _ in STATIONS}
    finally:
        worker.terminate()
        worker.close()
    assert done == set(STATIONS)
    with svc.catalog.engine.connect() as conn:
        states = conn.execute(text("SELECT status FROM procrastinate_jobs WHERE "
                                   "task_name = 'remote_fixity'")).scalars().all()
    assert states == ["succeeded"] * len(STATIONS)
    with Session(svc.catalog.engine) as s:
        runs = s.exec(select(AuditEvent).where(AuditEvent.action == "fixity.remote")
                      .order_by(col(AuditEvent.seq))).all()
    assert sorted(r.subjects[0] for r in runs) == [f"station:{s}" for s in STATIONS]
    assert all(r.actor == "system:worker" and r.details["checked"] == 3 and
               r.details["codes"] == ["E_FIXITY_UNREADABLE"] for r in runs)
