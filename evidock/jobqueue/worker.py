"""`evidock worker`: a procrastinate worker over the catalog's PostgreSQL queue.

Any number run, on any number of machines; each takes jobs (LISTEN/NOTIFY wakes it when
one is queued), runs up to ``[jobs] concurrency`` at once in threads with the process's
wired services, and writes a heartbeat every ``heartbeat_s``. A worker that dies (SIGKILL,
power loss) leaves its job ``doing``: every ``stalled_check_s`` one live worker (an
advisory lock picks it) hands the jobs of workers whose heartbeat is older than
``stalled_after_s`` back to the queue and wakes the others. The job's lock keeps a second
run of the same rendition from starting while one runs; the job itself is idempotent.

Events are JSON lines on stderr (journald keeps them; tests read them): ``ready``,
``job-started``, ``job-finished``, ``stalled-jobs-requeued``, ``stopped``. systemd
``Type=notify``: READY=1 once the worker is registered, WATCHDOG=1 from the sweeper.
SIGTERM/SIGINT: no new job is taken, the running ones finish.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any, cast

import procrastinate
from procrastinate import exceptions as pq_errors
from procrastinate.jobs import Job, Status
from procrastinate.manager import JobManager

from config import Settings, load_settings
from config.queue import JobQueueSettings
from docks.sdnotify import Notifier
from evidock.jobqueue.app import require_queue, worker_app
from evidock.jobqueue.schema import ensure_schema
from evidock.wiring import Services
from ingest.tools import warm_up

log = logging.getLogger("evidock.worker")
#: Transaction-scoped advisory lock key ("evst"): one worker at a time requeues stalled jobs.
SWEEP_LOCK = 0x65767374
#: procrastinate's log actions turned into our events (the record carries the job).
_EVENTS = {"start_worker": "ready", "start_job": "job-started",
           "job_success": "job-finished", "job_error": "job-finished",
           "job_error_retry": "job-finished", "job_aborted": "job-finished",
           "job_aborted_retry": "job-finished"}


def log_event(what: str, /, **fields: object) -> None:
    log.info(json.dumps({"event": what, **fields}, ensure_ascii=False, default=str))


class _Events(logging.Handler):
    """procrastinate logs each step with an ``action``; the ones we report become events
    (``ready`` also tells systemd)."""

    def __init__(self, notifier: Notifier) -> None:
        super().__init__(logging.INFO)
        self.notifier = notifier

    def emit(self, record: logging.LogRecord) -> None:
        what = _EVENTS.get(str(getattr(record, "action", "")))
        if what is None:
            return
        job: dict[str, Any] = getattr(record, "job", None) or {}
        worker: dict[str, Any] = getattr(record, "worker", None) or {}
        fields = {"worker": worker.get("name"), "worker_id": worker.get("worker_id"),
                  "pid": os.getpid()}
        if job:
            fields |= {"job_id": job.get("id"), "task": job.get("task_name"),
                       "args": job.get("task_kwargs"), "attempts": job.get("attempts")}
        if what == "job-finished":
            fields["outcome"] = str(record.action)  # type: ignore[attr-defined]
            fields["result"] = getattr(record, "result", None)
        log_event(what, **fields)
        if what == "ready":
            self.notifier.ready("taking jobs")


def _logging(notifier: Notifier) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    ours = logging.getLogger("evidock.worker")
    ours.handlers[:], ours.propagate = [handler], False
    ours.setLevel(logging.INFO)
    pq = logging.getLogger("procrastinate")
    pq.setLevel(logging.INFO)
    pq.handlers[:], pq.propagate = [_Events(notifier), _Warnings(handler)], False


class _Warnings(logging.Handler):
    """procrastinate's warnings and errors (a failed job's traceback) go to stderr too."""

    def __init__(self, out: logging.Handler) -> None:
        super().__init__(logging.WARNING)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        self.out.handle(record)


async def requeue_stalled(app: procrastinate.App, jobs: JobQueueSettings) -> list[int]:
    """Hand the jobs of dead workers (heartbeat older than ``stalled_after_s``) back to
    the queue, and wake the workers. One worker at a time: the advisory lock is held by
    this transaction until the jobs are requeued, so another sweep never requeues a job
    a live worker has taken since."""
    connector = cast(procrastinate.PsycopgConnector, app.connector)
    manager = app.job_manager
    async with connector.pool.connection() as conn, conn.transaction():
        got = await (await conn.execute(f"SELECT pg_try_advisory_xact_lock({SWEEP_LOCK})"
                                        )).fetchone()
        if not got or not got[0]:
            return []
        stalled = list(await manager.get_stalled_jobs(
            seconds_since_heartbeat=jobs.stalled_after_s))
        for job in stalled:
            await _requeue(manager, job)
            # procrastinate notifies only inserts; say a job is waiting again (sent at
            # this transaction's commit, after the requeue above committed).
            payload = json.dumps({"type": "job_inserted", "job_id": job.id})
            await conn.execute("SELECT pg_notify(%s, %s), pg_notify(%s, %s)",
                               (f"procrastinate_queue_v1#{job.queue}", payload,
                                "procrastinate_any_queue_v1", payload))
        await manager.prune_stalled_workers(jobs.stalled_after_s)
    return [int(job.id or 0) for job in stalled]


async def _requeue(manager: JobManager, job: Job) -> None:
    try:
        await manager.retry_job(job)
    except pq_errors.UniqueViolation:
        # A job for the same thing was queued while this one ran (its queueing lock allows
        # one waiting job): that one does the work once this one's lock is gone.
        await manager.finish_job(job, status=Status.ABORTED, delete_job=False)
        log_event("stalled-job-superseded", job_id=job.id, lock=job.lock)


async def _sweep_forever(app: procrastinate.App, jobs: JobQueueSettings,
                         notifier: Notifier) -> None:
    while True:
        try:
            requeued = await requeue_stalled(app, jobs)
        except Exception as exc:  # the database is away (any driver error): next round
            log_event("sweep-failed", error=f"{type(exc).__name__}: {exc}")
        else:
            if requeued:
                log_event("stalled-jobs-requeued", job_ids=requeued, pid=os.getpid())
            notifier.watchdog()
        await asyncio.sleep(jobs.stalled_check_s)  # the daemon's own period, not a wait


async def _run(app: procrastinate.App, jobs: JobQueueSettings, name: str,
               notifier: Notifier) -> None:
    async with app.open_async():
        sweeper = asyncio.create_task(_sweep_forever(app, jobs, notifier), name="sweeper")
        try:
            await app.run_worker_async(
                name=name, concurrency=jobs.concurrency,
                update_heartbeat_interval=jobs.heartbeat_s,
                stalled_worker_timeout=jobs.stalled_after_s,
                fetch_job_polling_interval=jobs.poll_s, install_signal_handlers=True)
        finally:
            notifier.stopping()
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)


def serve(config: Path | None, *, name: str | None = None) -> int:
    """Run one worker in the foreground until SIGTERM/SIGINT (after its running jobs)."""
    settings: Settings = load_settings(config_file=config)
    require_queue(settings)  # QueueUnavailable on SQLite or without [jobs] queue
    notifier = Notifier()
    _logging(notifier)
    svc = Services.from_config(settings)
    warm_up()  # as the service does: ffmpeg's libraries and version before the first job
    try:
        schema = ensure_schema(svc.catalog.engine)
        name = name or f"{socket.gethostname()}:{os.getpid()}"
        log_event("starting", worker=name, pid=os.getpid(), schema=schema)
        asyncio.run(_run(worker_app(settings, svc), settings.jobs, name, notifier))
    finally:
        svc.close()
    log_event("stopped", worker=name, pid=os.getpid())
    return 0


__all__ = ["SWEEP_LOCK", "log_event", "requeue_stalled", "serve"]
