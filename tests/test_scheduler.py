"""The scheduler: its settings, every job body (audited), the persistent job store with
catch-up after downtime, the daemon under SIGTERM/sd_notify, the CLI and the systemd unit.

Everything is real: SQLite catalogs, the content store on disk, APScheduler's own
SQLAlchemy job store, `evidock scheduler run` as a subprocess. Waiting is on events
(listener callbacks, a notify socket, process exit), never on sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from evidock_testing import migrated_home, store_bytes, write_agency_config
from pydantic import ValidationError
from service_support import serving
from sqlmodel import Session, col, select

from archive.audit.log import AuditEvent
from archive.catalog import Blob, Device, DockSession, Officer, Recording
from archive.keystore import StationKeys
from config import Settings, load_settings
from config.scheduler import JOB_IDS, SchedulerSettings
from evidock import jobs
from evidock.jobs import ACTOR, SYSTEM_ACTOR, execute
from evidock.scheduler import JobScheduler, opened
from evidock.wiring import Services
from integrity.errors import Forbidden, NotFound
from records.permissions import P
from retention.models import RetentionAction

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
WAIT_S = 60


# ------------------------------------------------------------------ helpers


def audit_events(svc: Services, action: str) -> list[AuditEvent]:
    with Session(svc.catalog.engine) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == action)
                           .order_by(col(AuditEvent.seq))))


def add_recording(svc: Services, *, ingested: datetime, data: bytes | None = None,
                  officer: str = "123456", serial: str = "ZFY0001",
                  ended: datetime | None = None) -> Recording:
    """A stored blob and a recording of it, from a finished dock session."""
    payload = data if data is not None else uuid.uuid4().bytes * 64
    b3, sha = store_bytes(svc.store, payload)
    session_id, rec_id = uuid.uuid4().hex, uuid.uuid4().hex
    rec = Recording(id=rec_id, session_id=session_id, device_serial=serial,
                    officer_id=officer, original_path=f"{rec_id}.MP4".encode(),
                    original_display=f"{rec_id}.MP4", kind="video", size=len(payload),
                    blake3=b3, sha256=sha, camera_start=None, source_mtime_ns=0,
                    ingested_at=ingested, status="ingested")
    with svc.catalog.transaction() as s:
        if s.get(Device, serial) is None:
            s.add(Device(serial=serial, first_seen=ingested))
        if s.get(Officer, officer) is None:
            s.add(Officer(police_number=officer, first_seen=ingested))
        s.add(DockSession(id=session_id, station_id="station-01", device_serial=serial,
                          officer_id=officer, camera_model="generic-dcim", source="/x",
                          started_at=ingested, ended_at=ended or ingested,
                          outcome="completed"))
        if s.get(Blob, b3) is None:
            s.add(Blob(blake3=b3, sha256=sha, size=len(payload), stored_at=ingested))
        s.add(rec)
    return rec


def scheduler_config(tmp_path: Path, **every: int) -> Path:
    """A config file enabling only the given jobs (``<job>=<seconds>``)."""
    grace = every.pop("grace", 86400)
    lines = ["[scheduler]", f"misfire_grace_s = {grace}"]
    lines += [f"{job}_every_s = {every.get(job, 0)}" for job in JOB_IDS]
    path = tmp_path / "sched.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def env_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """EVIDOCK_HOME in the environment too: jobs run by the scheduler load config there."""
    monkeypatch.setenv("EVIDOCK_HOME", str(home))
    monkeypatch.delenv("EVIDOCK_CONFIG", raising=False)
    return home


class Runs:
    """APScheduler events collected by a listener; wait until ``n`` have finished."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.submitted: list[list[datetime]] = []
        self.finished: list[JobEvent] = []
        self.done = threading.Event()

    def __call__(self, ev: JobEvent) -> None:
        if ev.code == EVENT_JOB_SUBMITTED:
            self.submitted.append(list(ev.scheduled_run_times))  # type: ignore[attr-defined]
            return
        self.finished.append(ev)
        if len(self.finished) >= self.n:
            self.done.set()

    def codes(self) -> list[int]:
        return [ev.code for ev in self.finished]


def restart_with_missed_runs(settings: Settings, config: Path, *, hours_ago: float,
                             coalesce: bool = True) -> datetime:
    """Start once (jobs stored), stop, then pretend the daemon was down: the stored
    next run time of audit_head moves ``hours_ago`` into the past. Returns that time."""
    first = JobScheduler(settings=settings, config=config)
    assert first.start(paused=True) == {"audit_head": "added"}
    first.shutdown(wait=False)
    with opened(settings, config) as again:
        [row] = [j for j in again.jobs() if j["job"] == "audit_head"]
        assert row["stored"] and row["next_run_time"] is not None
        past = datetime.now(UTC) - timedelta(hours=hours_ago)
        again.scheduler.modify_job("audit_head", next_run_time=past, coalesce=coalesce)
    return past


# ------------------------------------------------------------------ settings


def test_every_job_has_an_interval_zero_disables_it_and_tiny_intervals_are_refused() -> None:
    default = SchedulerSettings()
    assert set(default.enabled()) == set(JOB_IDS)
    assert SchedulerSettings(fixity_every_s=0).enabled().keys() == set(JOB_IDS) - {"fixity"}
    with pytest.raises(ValidationError, match="fixity_every_s = 5"):
        SchedulerSettings(fixity_every_s=5)
    with pytest.raises(ValidationError):
        SchedulerSettings(upload_every_s=-1)
    with pytest.raises(ValidationError):
        SchedulerSettings(misfire_grace_s=0)


def test_the_scheduler_section_loads_from_toml_and_environment(home: Path) -> None:
    settings = load_settings(environ={"EVIDOCK_HOME": str(home),
                                      "EVIDOCK_SCHEDULER__OVERDUE_EVERY_S": "0"})
    assert settings.scheduler.table == "scheduler_jobs"
    assert settings.scheduler.interval_s("overdue") == 0
    assert settings.scheduler.interval_s("audit_head") == 3600
    assert "overdue" not in settings.scheduler.enabled()


# ------------------------------------------------------------------ job bodies


def test_every_job_run_is_one_audit_event_by_the_scheduler(services: Services) -> None:
    for job in JOB_IDS:
        result = execute(job, services)
        assert result.outcome in ("ok", "skipped"), result
        [event] = audit_events(services, f"scheduler.{job}")
        assert event.actor == "system:scheduler" == ACTOR
        assert event.seq == result.audit_seq
        assert event.details["outcome"] == result.outcome
    # upload is not configured: both object-storage jobs say so and touch nothing
    assert execute("upload", services).counts["reason"] == "upload.enabled is false"
    assert execute("remote_retention", services).outcome == "skipped"


def test_fixity_job_samples_blobs_and_reports_a_missing_one(services: Services) -> None:
    good = add_recording(services, ingested=T0)
    gone = add_recording(services, ingested=T0)
    services.store.path_for(gone.blake3).unlink()
    result = execute("fixity", services)
    assert result.outcome == "findings" and result.exit_code == 1
    assert result.counts["checked"] == 2 and result.counts["codes"] == ["E_FIXITY_MISSING"]
    [event] = audit_events(services, "scheduler.fixity")
    assert event.details["findings"] == 1 and isinstance(event.details["seed"], int)
    assert good.blake3 != gone.blake3


def test_overdue_job_lists_cameras_and_officers_past_the_window(services: Services) -> None:
    add_recording(services, ingested=T0 - timedelta(days=3), serial="ZFY0002", officer="654321")
    add_recording(services, ingested=T0, serial="ZFY0003", officer="111111")
    result = execute("overdue", services)
    assert result.outcome == "findings"
    assert result.counts["cameras"] == ["ZFY0002"] and result.counts["officers"] == ["654321"]
    assert result.counts["window_s"] == 24 * 3600


def test_audit_head_job_signs_only_when_there_is_a_key(services: Services) -> None:
    assert execute("audit_head", services).counts == {"signed": False}
    StationKeys(directory=services.settings.keys_dir).init()
    signed = execute("audit_head", services)
    assert signed.counts["signed"] is True and signed.counts["size"] == 1
    assert services.audit().latest_head() is not None


def test_retention_job_schedules_due_deletions_but_never_approves(services: Services) -> None:
    old = add_recording(services, ingested=T0 - timedelta(days=400))
    add_recording(services, ingested=T0 - timedelta(days=10))
    result = execute("retention_plan", services)
    assert result.outcome == "ok" and result.counts["scheduled"] == 1
    with Session(services.catalog.engine) as s:
        steps = list(s.exec(select(RetentionAction.recording_id, RetentionAction.step)))
    assert steps == [(old.id, "scheduled")]
    assert [e.actor for e in audit_events(services, "retention.schedule")] == \
        [SYSTEM_ACTOR.audit_name]
    assert execute("retention_plan", services).counts["scheduled"] == 0  # idempotent
    assert SYSTEM_ACTOR.permissions == frozenset({P.RETENTION_PLAN})
    with pytest.raises(Forbidden):
        services.retention().approve(SYSTEM_ACTOR, old.id)


def test_a_failing_job_is_recorded_with_its_code(services: Services,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(ctx: jobs.JobContext) -> jobs.Outcome:
        raise NotFound("nothing there", what="x")

    def buggy(ctx: jobs.JobContext) -> jobs.Outcome:
        raise RuntimeError("a bug")

    monkeypatch.setitem(jobs.BODIES, "overdue", broken)  # type: ignore[index]
    result = execute("overdue", services)
    assert (result.outcome, result.code, result.exit_code) == ("failed", "E_NOT_FOUND",
                                                               NotFound.exit_code)
    monkeypatch.setitem(jobs.BODIES, "fixity", buggy)  # type: ignore[index]
    with pytest.raises(RuntimeError):
        execute("fixity", services)
    details = [e.details for e in audit_events(services, "scheduler.overdue")
               + audit_events(services, "scheduler.fixity")]
    assert [(d["outcome"], d["code"]) for d in details] == [("failed", "E_NOT_FOUND"),
                                                            ("failed", "E_INTERNAL")]


# ------------------------------------------------------------------ the job store


def test_jobs_persist_and_reconcile_with_the_config(tmp_path: Path, env_home: Path) -> None:
    config = scheduler_config(tmp_path, audit_head=3600, fixity=600)
    settings = load_settings(config_file=config)
    sched = JobScheduler(settings=settings, config=config)
    assert sched.start(paused=True) == {"fixity": "added", "audit_head": "added"}
    stored = {j["job"]: j["next_run_time"] for j in sched.jobs() if j["stored"]}
    sched.shutdown(wait=False)
    assert set(stored) == {"fixity", "audit_head"}
    job = JobScheduler(settings=settings, config=config)
    assert job.start(paused=True) == {"fixity": "kept", "audit_head": "kept"}
    assert {j["job"]: j["next_run_time"] for j in job.jobs() if j["stored"]} == stored
    stored_job = job.scheduler.get_job("audit_head")
    assert stored_job.func_ref == "evidock.jobs:run_audit_head"
    assert stored_job.args == (str(config.resolve()),)
    assert (stored_job.coalesce, stored_job.max_instances) == (True, 1)
    job.shutdown(wait=False)
    changed = scheduler_config(tmp_path, audit_head=7200)
    again = JobScheduler(settings=load_settings(config_file=changed), config=changed)
    assert again.start(paused=True) == {"fixity": "removed", "audit_head": "rescheduled"}
    assert [j["job"] for j in again.jobs() if j["stored"]] == ["audit_head"]
    again.shutdown(wait=False)


def test_missed_runs_after_downtime_are_caught_up_once(tmp_path: Path, env_home: Path) -> None:
    config = scheduler_config(tmp_path, audit_head=3600)
    settings = load_settings(config_file=config)
    StationKeys(directory=settings.keys_dir).init()
    before = restart_with_missed_runs(settings, config, hours_ago=9.5)  # 10 runs missed
    for _ in range(2):  # listing (`evidock scheduler jobs`) never consumes a missed run
        with opened(settings, config) as listing:
            [row] = [j for j in listing.jobs() if j["job"] == "audit_head"]
        assert abs(datetime.fromisoformat(row["next_run_time"]) - before) < timedelta(seconds=1)
    runs = Runs(1)
    sched = JobScheduler(settings=settings, config=config)
    sched.scheduler.add_listener(runs, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED
                                 | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    assert sched.start() == {"audit_head": "kept"}
    try:
        assert runs.done.wait(WAIT_S), "the missed job did not run after the restart"
        [row] = [j for j in sched.jobs() if j["job"] == "audit_head"]
    finally:
        sched.shutdown(wait=True)
    assert runs.codes() == [EVENT_JOB_EXECUTED]
    assert len(runs.submitted) == 1 and len(runs.submitted[0]) == 1  # coalesced
    assert runs.submitted[0][0] == before + timedelta(hours=9)  # the latest missed time
    assert datetime.fromisoformat(row["next_run_time"]) > datetime.now(UTC)
    svc = Services.from_config(settings)
    try:
        [event] = audit_events(svc, "scheduler.audit_head")
        assert event.details["outcome"] == "ok" and event.details["signed"] is True
    finally:
        svc.close()


def test_without_coalescing_every_missed_run_would_run(tmp_path: Path, env_home: Path) -> None:
    """The control for the test above: its assertion can fail."""
    config = scheduler_config(tmp_path, audit_head=3600)
    settings = load_settings(config_file=config)
    restart_with_missed_runs(settings, config, hours_ago=9.5, coalesce=False)
    runs = Runs(10)
    sched = JobScheduler(settings=settings, config=config)
    sched.scheduler.add_listener(runs, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED
                                 | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.scheduler.start(paused=True)  # no reconcile: it would restore coalesce=True
    sched.scheduler.resume()
    try:
        assert runs.done.wait(WAIT_S)
    finally:
        sched.shutdown(wait=True)
    assert runs.codes() == [EVENT_JOB_EXECUTED] * 10 and len(runs.submitted[0]) == 10


def test_a_run_missed_beyond_the_grace_is_audited_not_run(tmp_path: Path,
                                                          env_home: Path) -> None:
    config = scheduler_config(tmp_path, audit_head=3600, grace=60)
    settings = load_settings(config_file=config)
    restart_with_missed_runs(settings, config, hours_ago=9.5)  # latest missed: 30 min ago
    runs = Runs(1)
    svc = Services.from_config(settings)
    sched = JobScheduler(settings=settings, config=config)
    sched.listen(svc)
    sched.scheduler.add_listener(runs, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    sched.start()
    try:
        assert runs.done.wait(WAIT_S)
    finally:
        sched.shutdown(wait=True)
    try:
        assert runs.codes() == [EVENT_JOB_MISSED]
        [event] = audit_events(svc, "scheduler.audit_head")
        assert event.details["outcome"] == "missed" and event.actor == ACTOR
    finally:
        svc.close()


# ------------------------------------------------------------------ daemon and CLI


def evidock(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "evidock", *args], capture_output=True,
                          text=True, timeout=300,
                          env=dict(os.environ, EVIDOCK_HOME=str(home), **env))


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(WAIT_S)
    yield sock, path
    sock.close()


def _until(sock: socket.socket, wanted: str) -> list[str]:
    seen: list[str] = []
    while wanted not in seen:
        seen += sock.recv(4096).decode().split("\n")
    return seen


def test_daemon_notifies_ready_stores_jobs_and_stops_on_sigterm(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    home = migrated_home(tmp_path / "h")  # systemd starts the daemon after `evidock init`
    sock, path = notify_socket
    env = dict(os.environ, EVIDOCK_HOME=str(home), NOTIFY_SOCKET=path)
    proc = subprocess.Popen([sys.executable, "-m", "evidock", "scheduler", "run"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert any(m.startswith(f"STATUS={len(JOB_IDS)} jobs") for m in _until(sock, "READY=1"))
        listed = evidock(home, "scheduler", "jobs", "--json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)["jobs"]
        assert [r["job"] for r in rows] == list(JOB_IDS)
        assert all(r["stored"] and r["next_run_time"] for r in rows)
        second = evidock(home, "scheduler", "run")
        assert second.returncode == 1 and "E_CONFLICT" in second.stderr
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in _until(sock, "STOPPING=1")
        _, err = proc.communicate(timeout=WAIT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert events[0] == "ready" and events[-2:] == ["stopping", "stopped"]


def test_run_once_runs_a_job_now_and_refuses_unknown_ones(tmp_path: Path) -> None:
    home = migrated_home(tmp_path / "h")
    run = evidock(home, "scheduler", "run-once", "overdue", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert (out["job"], out["outcome"], out["overdue"]) == ("overdue", "ok", 0)
    assert isinstance(out["audit_seq"], int)
    bad = evidock(home, "scheduler", "run-once", "nope", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["error"]["code"] == "E_INVALID"


def test_sync_retention_is_the_admins_and_needs_object_storage(tmp_path: Path) -> None:
    """`upload sync-retention` asks the station service: the admin may (E_CONFIG here:
    no [upload]); a clerk may not (refused before the config is looked at)."""
    home = tmp_path / "h"
    write_agency_config(home)
    with serving(home) as svc:
        sync = svc.cli("upload", "sync-retention", "--json", user="admin")
        clerk = svc.cli("upload", "sync-retention", "--json", user="clerk")
    assert sync.returncode == 2 and json.loads(sync.stdout)["error"]["code"] == "E_CONFIG"
    assert clerk.returncode == 3 and json.loads(clerk.stdout)["error"]["code"] == "E_FORBIDDEN"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (Debian package systemd)")
    unit = (REPO / "systemd" / "evidock-scheduler.service").read_text()
    exe = shutil.which("evidock") or str(REPO / ".venv" / "bin" / "evidock")
    assert Path(exe).exists()
    (tmp_path / "evidock-scheduler.service").write_text(
        unit.replace("/opt/evidock/.venv/bin/evidock", exe))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no",
                          str(tmp_path / "evidock-scheduler.service")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "evidock-scheduler.service" not in res.stderr, res.stderr
    for key in ("Type=notify", "ExecStart=/opt/evidock/.venv/bin/evidock scheduler run",
                "KillSignal=SIGTERM", "WatchdogSec=", "NoNewPrivileges=yes",
                "CapabilityBoundingSet=\n", "ProtectSystem=strict"):
        assert key in unit
