"""The PostgreSQL job queue (issue 20): `evidock worker` processes on one PostgreSQL
catalog, real ffmpeg, the fixture camera's footage.

A worker SIGKILLed while its ffmpeg cuts a rendition leaves the job ``doing``; the other
worker sees its heartbeat stop, hands the job back to the queue and makes the rendition:
one rendition row, one segment set, a manifest that verifies, the job succeeded once.
Queueing the same rendition twice makes it once. A SQLite station and a non-operator
account are refused. Nothing waits by sleeping: the tests wait for the workers' event
lines and for the blocked ffmpeg's FIFO, each with a deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from evidock_testing import (
    REPO,
    blocking_ffmpeg,
    listening_fifo,
    read_lines,
    reporting_tools,
    run_evidock,
    station_on,
    write_agency_config,
)
from service_support import ensure_accounts, open_dir, run_as
from sqlalchemy import text
from sqlmodel import Session
from sqlmodel import select as sql_select
from worker_support import JOBS_TOML, Worker

from archive.catalog import Blob, Recording
from archive.catalog.models import Rendition, Segment
from archive.verify_stored import StoredVerifier
from evidock.jobqueue.renditions import Queued
from evidock.jobs import execute
from evidock.wiring import Services
from ingest.outcome import OffloadRequest
from integrity.package import is_failure


@pytest.fixture
def station(tmp_path: Path, camera: Path) -> Iterator[tuple[Services, dict[str, str]]]:
    """A station on PostgreSQL with the queue configured and the camera offloaded (not
    rendered); the environment its workers run with."""
    home = tmp_path / "home"
    with station_on("postgresql", home, extra=JOBS_TOML) as svc:
        svc.keys.init()
        report = svc.offloader().run(OffloadRequest(source=camera, device_serial="ZFY0001",
                                                    officer_id="123456"))
        assert report.outcome == "completed", report.outcome
        env = {"EVIDOCK_HOME": str(home), "EVIDOCK_PATHS__CATALOG_URL": svc.settings.catalog_url}
        yield svc, env


def _video(svc: Services) -> Recording:
    return next(r for r in svc.catalog.recordings() if r.kind == "video" and not r.flags)



@pytest.fixture
def cutting(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A worker's PATH whose ffmpeg blocks once it cuts, and the FIFO it reports on."""
    fifo = tmp_path / "cutting"
    with listening_fifo(fifo) as fd:
        yield blocking_ffmpeg(tmp_path / "bin", fifo, say="$$"), fd


def _cutting_pid(fd: int, timeout: float = 120) -> int:
    ready, _, _ = select.select([fd], [], [], timeout)
    assert ready, "the worker never started cutting"
    return int(os.read(fd, 64).decode().split()[0])


def _index(worker: Worker, what: str, **match: object) -> int:
    """Where in the worker's output the event ``what`` (with ``match``) was written."""
    for i, line in enumerate(worker.lines):
        event = json.loads(line) if line.startswith("{") else {}
        if event.get("event") == what and all(event.get(k) == v for k, v in match.items()):
            return i
    raise AssertionError(f"{worker.name} never wrote {what} {match}")


def _renditions(svc: Services, recording_id: str) -> list[Rendition]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(sql_select(Rendition).where(Rendition.recording_id == recording_id)))


def _job_events(svc: Services, job_id: int) -> list[str]:
    with svc.catalog.engine.connect() as conn:
        return [str(t) for t in conn.execute(text(
            "SELECT type FROM procrastinate_events WHERE job_id = :j ORDER BY id"),
            {"j": job_id}).scalars()]


def _job_status(svc: Services, job_id: int) -> str:
    with svc.catalog.engine.connect() as conn:
        return str(conn.execute(text("SELECT status FROM procrastinate_jobs WHERE id = :j"),
                                {"j": job_id}).scalar_one())


def _check_one_rendition(svc: Services, rec: Recording) -> Rendition:
    rows = _renditions(svc, rec.id)
    assert [r.status for r in rows] == ["ok"], [(r.status, r.code, r.reason) for r in rows]
    with Session(svc.catalog.engine) as s:
        segments = list(s.exec(sql_select(Segment).where(Segment.rendition_id == rows[0].id)))
        blobs = {b.blake3 for b in s.exec(sql_select(Blob))}
    assert segments and len({g.index for g in segments}) == len(segments)
    assert {g.blake3 for g in segments} <= blobs and rows[0].manifest_blake3 in blobs
    for b3 in {g.blake3 for g in segments} | {rows[0].manifest_blake3}:
        assert svc.store.path_for(b3).is_file()
    findings = StoredVerifier(store=svc.store, catalog=svc.catalog, keys=svc.keys).verify(rec.id)
    assert not [f for f in findings if is_failure(f)], findings
    return rows[0]


@pytest.mark.slow
def test_a_worker_killed_mid_rendition_hands_the_job_to_the_other(
        station: tuple[Services, dict[str, str]], cutting: tuple[Path, int]) -> None:
    svc, env = station
    rec = _video(svc)
    tools, fd = cutting
    a = Worker("A", {**env, "PATH": f"{tools}:{os.environ['PATH']}"})
    b: Worker | None = None
    cutter: int | None = None
    try:
        a.ready()
        queued = svc.renditions().render(rec)
        assert isinstance(queued, Queued) and queued.job_id is not None
        job_id = queued.job_id
        a.wait_event("job-started", job_id=job_id)
        cutter = _cutting_pid(fd)  # A's ffmpeg is cutting now
        b = Worker("B", env).ready()
        assert _job_status(svc, job_id) == "doing" and _renditions(svc, rec.id) == []
        killed_at = len(b.lines)
        a.kill()  # SIGKILL mid-rendition
        os.kill(cutter, signal.SIGKILL)  # its orphaned ffmpeg, as a reboot would
        requeued = b.wait_event("stalled-jobs-requeued")
        assert requeued["job_ids"] == [job_id]
        assert _index(b, "stalled-jobs-requeued") >= killed_at, "requeued from a live worker"
        b.wait_event("job-started", job_id=job_id)
        done = b.wait_event("job-finished", job_id=job_id)
        assert done["outcome"] == "job_success" and done["result"]["made"] is True
        assert b.terminate() == 0, "".join(b.lines)[-3000:]
    finally:
        a.close()
        if b is not None:
            b.close()
    _check_one_rendition(svc, rec)
    assert _job_status(svc, job_id) == "succeeded"
    events = _job_events(svc, job_id)
    assert events.count("started") == 2 and events.count("succeeded") == 1, events
    assert svc.renditions().render(rec).status == "ok", "made: nothing queued again"


@pytest.mark.slow
def test_a_job_queued_again_while_one_runs_waits_for_its_lock_then_replaces_it(
        station: tuple[Services, dict[str, str]], cutting: tuple[Path, int]) -> None:
    """The rendition is queued again while A cuts it (its queueing lock allows one
    waiting job): B must not run the second job while A holds the lock; once A is dead
    the first job cannot go back to the queue beside the second, so it is ended
    (aborted) and the second makes the rendition, once."""
    svc, env = station
    rec = _video(svc)
    tools, fd = cutting
    assert svc.job_queue is not None
    a = Worker("A", {**env, "PATH": f"{tools}:{os.environ['PATH']}"})
    b: Worker | None = None
    try:
        a.ready()
        first = svc.job_queue.defer("render", {"recording_id": rec.id})
        assert first.job_id is not None
        cutter = _cutting_pid(fd)
        second = svc.job_queue.defer("render", {"recording_id": rec.id})
        assert second.job_id is not None, "the first is running, not waiting"
        b = Worker("B", env).ready()
        a.kill()
        os.kill(cutter, signal.SIGKILL)
        b.wait_event("stalled-job-superseded", job_id=first.job_id)
        done = b.wait_event("job-finished", job_id=second.job_id)
        assert done["outcome"] == "job_success" and done["result"]["made"] is True
        assert b.terminate() == 0
    finally:
        a.close()
        if b is not None:
            b.close()
    assert _index(b, "stalled-job-superseded") < _index(b, "job-started",
                                                         job_id=second.job_id), \
        "the second job ran while the first held its lock"
    _check_one_rendition(svc, rec)
    assert _job_status(svc, first.job_id) == "aborted"
    assert _job_status(svc, second.job_id) == "succeeded"


@pytest.mark.slow
def test_queueing_the_same_rendition_twice_makes_it_once(
        station: tuple[Services, dict[str, str]]) -> None:
    svc, env = station
    rec = _video(svc)
    assert svc.job_queue is not None
    first = svc.job_queue.defer("render", {"recording_id": rec.id})
    again = svc.renditions().render(rec)
    assert first.job_id is not None
    assert isinstance(again, Queued) and again.job_id is None, "the waiting job is the one"
    worker = Worker("C", env)
    try:
        worker.ready()
        done = worker.wait_event("job-finished", job_id=first.job_id)
        assert done["result"]["made"] is True
        # Queued again after it was made (a scheduler catch-up racing the worker): the
        # job runs and makes nothing.
        late = svc.job_queue.defer("render", {"recording_id": rec.id})
        assert late.job_id is not None
        noop = worker.wait_event("job-finished", job_id=late.job_id)
        assert noop["outcome"] == "job_success" and noop["result"]["made"] is False
        assert worker.terminate() == 0
    finally:
        worker.close()
    made = _check_one_rendition(svc, rec)
    assert noop["result"]["rendition_id"] == made.id
    assert [_job_status(svc, j) for j in (first.job_id, late.job_id)] == ["succeeded"] * 2


def test_a_worker_loads_ffprobe_and_ffmpeg_as_it_starts(tmp_path: Path) -> None:
    """As the service does (issue 14): the libraries in the page cache and ffmpeg's
    version known before the first job, not paid inside the first rendition."""
    home = tmp_path / "home"
    with station_on("postgresql", home, extra=JOBS_TOML) as svc, \
            listening_fifo(tmp_path / "ran") as fd:
        tools = reporting_tools(tmp_path / "bin", tmp_path / "ran")
        worker = Worker("W", {"EVIDOCK_HOME": str(home),
                              "EVIDOCK_PATHS__CATALOG_URL": svc.settings.catalog_url,
                              "PATH": f"{tools}:{os.environ['PATH']}"})
        try:
            ran = read_lines(fd, 2)
        finally:
            worker.close()
    assert sorted(ran) == ["ffmpeg -version", "ffprobe -version"]


def test_a_worker_is_refused_on_the_sqlite_catalog(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_agency_config(home)
    run = run_evidock(home, "worker", "--json")
    assert run.returncode == 2, (run.stdout, run.stderr)
    error = json.loads(run.stdout)["error"]
    assert error["code"] == "E_QUEUE_UNAVAILABLE"
    assert "SQLite" in error["message"] and "in-process" in error["message"]
    queued = run_evidock(home, "worker", env={"EVIDOCK_JOBS__QUEUE": "postgres"})
    assert queued.returncode == 2
    assert queued.stderr.startswith("evidock: E_CONFIG: ") and "PostgreSQL" in queued.stderr


def test_a_worker_is_refused_for_other_accounts() -> None:
    ensure_accounts()
    home = open_dir("evidock-worker-") / "home"
    write_agency_config(home)
    run = run_as("evt-officer", [sys.executable, "-m", "evidock", "worker", "--json"],
                 env={"EVIDOCK_HOME": str(home)}, cwd=REPO)
    assert run.returncode == 3, (run.stdout, run.stderr)
    error = json.loads(run.stdout)["error"]
    assert error["code"] == "E_NOT_OPERATOR" and error["details"]["account"] == "evt-officer"


def test_the_schedulers_catch_up_queues_each_rendition_once(
        station: tuple[Services, dict[str, str]]) -> None:
    """With a queue the scheduler's renditions job queues instead of rendering; run
    again before any worker took them, it adds no second job for a recording."""
    svc, _ = station
    untried = {r.id for r in svc.catalog.recordings()}
    first = execute("renditions", svc)
    assert first.outcome == "ok" and first.counts["queued"] == len(untried)
    assert first.counts["ok"] == first.counts["failed"] == 0
    again = execute("renditions", svc)
    assert again.counts["queued"] == len(untried)
    with svc.catalog.engine.connect() as conn:
        jobs = conn.execute(text("SELECT args->>'recording_id', status FROM procrastinate_jobs"
                                 )).all()
    assert sorted(r for r, _ in jobs) == sorted(untried), "one job per recording"
    assert {s for _, s in jobs} == {"todo"}
    assert all(_renditions(svc, rid) == [] for rid in untried), "nothing made in-process"
