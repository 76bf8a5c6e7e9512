"""The periodic-job daemon: APScheduler 3 with its job store in the catalog database.

Jobs (:mod:`evidock.jobs`) live in the table ``[scheduler] table`` (default
``scheduler_jobs``) of the catalog (``settings.catalog_url``), named by textual reference
(``evidock.jobs:run_fixity``) with the config file path as their argument. Their next run
times survive restarts: every job is ``coalesce=True, max_instances=1`` with
``misfire_grace_time = [scheduler] misfire_grace_s``, so after downtime a job that missed
any number of runs runs once (its latest missed time, if within the grace) and then
continues on its interval.

On start the stored jobs are reconciled with the config without touching their next run
times: a job whose interval is now 0 is removed, a new one is added (first run one
interval from now), a changed interval reschedules the job, a changed config path or
grace only updates the job. A run beyond the grace (``missed``) is audited by the daemon;
every run is audited by the job itself.

``serve`` runs in the foreground for systemd ``Type=notify``: READY=1 once the jobs are
reconciled, WATCHDOG=1 while the scheduler thread lives, STOPPING=1 on SIGTERM/SIGINT,
then waits for running jobs to finish. One daemon per EVIDOCK_HOME (``run/scheduler.lock``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, STATE_STOPPED, BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from archive.catalog.db import make_engine, writer
from config import Settings, load_settings
from config.scheduler import JOB_IDS
from docks.sdnotify import Notifier
from evidock.jobs import ACTOR, JOB_REFS
from evidock.wiring import Services
from integrity.errors import Conflict

log = logging.getLogger("evidock.scheduler")
WORKERS = 2  # two cores: a fixity run and an upload may overlap, nothing more


def log_event(what: str, /, **fields: object) -> None:
    """One JSON line per daemon event (journald keeps it; tests parse it)."""
    log.info(json.dumps({"event": what, **fields}, ensure_ascii=False, default=str))


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.astimezone(UTC).isoformat()


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]  # APScheduler 3 has no stubs
    """APScheduler 3.11 runs one more ``_process_jobs`` pass after ``shutdown()`` (its
    main loop waits, then processes, then checks the state). That pass submits due jobs
    to the executors just shut down ("cannot schedule new futures after shutdown") and
    still stores their NEXT run time: a missed run would be consumed without running,
    e.g. by `evidock scheduler jobs` after downtime or by a SIGTERM at a due time. Here
    a pass starting once the state is STOPPED does nothing; the check is made under the
    job-store lock, which ``shutdown()`` takes before stopping the executors, so a pass
    already under way finishes submitting to live executors."""

    def _process_jobs(self) -> float | None:
        with self._jobstores_lock:
            if self.state == STATE_STOPPED:
                return None
            return super()._process_jobs()  # type: ignore[no-any-return]  # no stubs


class JobScheduler:
    """The configured jobs on an APScheduler with the persistent SQLAlchemy job store."""

    def __init__(self, *, settings: Settings, config: Path | None,
                 scheduler: BaseScheduler | None = None) -> None:
        self.settings = settings
        self.config = str(config.resolve()) if config is not None else None
        self.grace = settings.scheduler.misfire_grace_s
        self.scheduler = scheduler or self._build()

    def _build(self) -> BaseScheduler:
        engine = writer(make_engine(self.settings.catalog_url))  # BEGIN IMMEDIATE on SQLite
        store = SQLAlchemyJobStore(engine=engine, tablename=self.settings.scheduler.table)
        return _Scheduler(
            jobstores={"default": store},
            executors={"default": ThreadPoolExecutor(max_workers=WORKERS)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          "misfire_grace_time": self.grace},
            timezone=UTC)

    def start(self, *, paused: bool = False) -> dict[str, str]:
        """Open the job store, reconcile the jobs with the config, then run them."""
        self.scheduler.start(paused=True)
        changes = self.reconcile()
        if not paused:
            self.scheduler.resume()
        return changes

    def reconcile(self) -> dict[str, str]:
        """Make the stored jobs match the config; job id → what was done."""
        done: dict[str, str] = {}
        for job_id in JOB_IDS:
            every = self.settings.scheduler.interval_s(job_id)
            job = self.scheduler.get_job(job_id)
            if every == 0:
                if job is not None:
                    self.scheduler.remove_job(job_id)
                    done[job_id] = "removed"
                continue
            done[job_id] = self._keep(job_id, job, every) if job is not None else \
                self._add(job_id, every)
        return done

    def _trigger(self, every: int) -> IntervalTrigger:
        return IntervalTrigger(seconds=every, timezone=UTC)

    def _add(self, job_id: str, every: int) -> str:
        self.scheduler.add_job(JOB_REFS[job_id], trigger=self._trigger(every), id=job_id,
                               name=job_id, args=[self.config], coalesce=True,
                               max_instances=1, misfire_grace_time=self.grace)
        return "added"

    def _keep(self, job_id: str, job: Job, every: int) -> str:
        what = "kept"
        wanted = {"func": JOB_REFS[job_id], "args": (self.config,), "coalesce": True,
                  "max_instances": 1, "misfire_grace_time": self.grace}
        current = {"func": job.func_ref, "args": tuple(job.args), "coalesce": job.coalesce,
                   "max_instances": job.max_instances,
                   "misfire_grace_time": job.misfire_grace_time}
        if current != wanted:
            self.scheduler.modify_job(job_id, **wanted)
            what = "updated"
        interval = getattr(job.trigger, "interval", None)
        if interval != timedelta(seconds=every):
            self.scheduler.reschedule_job(job_id, trigger=self._trigger(every))
            what = "rescheduled"
        return what

    def jobs(self) -> list[dict[str, Any]]:
        """Every configured job: interval, and the stored next run time (None: not stored
        yet, i.e. the daemon has not started since the job was enabled)."""
        out = []
        for job_id in JOB_IDS:
            job = self.scheduler.get_job(job_id)
            every = self.settings.scheduler.interval_s(job_id)
            out.append({"job": job_id, "every_s": every, "enabled": every > 0,
                        "stored": job is not None,
                        "next_run_time": _iso(job.next_run_time) if job else None})
        return out

    def listen(self, svc: Services) -> None:
        """Log every run; audit a run missed beyond the grace (``outcome: missed``)."""
        self.scheduler.add_listener(_on_event(svc), EVENT_JOB_EXECUTED | EVENT_JOB_ERROR
                                    | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    @property
    def running(self) -> bool:
        return bool(self.scheduler.state == STATE_RUNNING)

    def shutdown(self, *, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)


@contextmanager
def opened(settings: Settings, config: Path | None) -> Iterator[JobScheduler]:
    """The job store opened read-only in spirit: paused, never running a job."""
    sched = JobScheduler(settings=settings, config=config)
    sched.scheduler.start(paused=True)
    try:
        yield sched
    finally:
        sched.shutdown(wait=False)


# ------------------------------------------------------------------ the daemon


@contextmanager
def single_instance(home: Path) -> Iterator[None]:
    """One scheduler per EVIDOCK_HOME: an exclusive flock on run/scheduler.lock."""
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(run / "scheduler.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict(f"another evidock scheduler is running on {home}",
                           lock=str(run / "scheduler.lock")) from None
        yield
    finally:
        os.close(fd)


def _on_event(svc: Services) -> Callable[[JobEvent], None]:
    def listener(ev: JobEvent) -> None:
        run_time = getattr(ev, "scheduled_run_time", None)
        if ev.code == EVENT_JOB_MISSED:
            svc.audit().record(actor=ACTOR, action=f"scheduler.{ev.job_id}", subjects=[],
                               details={"outcome": "missed", "scheduled": _iso(run_time)},
                               at=svc.clock())
        what = {EVENT_JOB_EXECUTED: "job-done", EVENT_JOB_ERROR: "job-error",
                EVENT_JOB_MISSED: "job-missed",
                EVENT_JOB_MAX_INSTANCES: "job-still-running"}.get(ev.code, "job-event")
        log_event(what, job=ev.job_id, scheduled=_iso(run_time),
                  result=getattr(ev, "retval", None),
                  error=repr(getattr(ev, "exception", None) or "") or None)
    return listener


def _logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("evidock.scheduler", "apscheduler"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO if name == "evidock.scheduler" else logging.WARNING)
        logger.propagate = False


def serve(config: Path | None) -> int:
    """Run the scheduler in the foreground until SIGTERM/SIGINT."""
    _logging()
    settings = load_settings(config_file=config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with single_instance(settings.home):
        svc = Services.from_config(settings)  # also creates the catalog schema
        sched = JobScheduler(settings=settings, config=config)
        sched.listen(svc)
        notifier = Notifier()
        try:
            changes = sched.start()
            log_event("ready", pid=os.getpid(), jobs=sched.jobs(), changes=changes)
            notifier.ready(f"{len(settings.scheduler.enabled())} jobs")
            tick = notifier.watchdog_s / 2 if notifier.watchdog_s else None
            while not stop.wait(tick):
                if sched.running:
                    notifier.watchdog()
            notifier.stopping()
            log_event("stopping")
        finally:
            sched.shutdown(wait=True)
            svc.close()
        log_event("stopped")
    return 0


__all__ = ["JobScheduler", "log_event", "opened", "serve", "single_instance"]
