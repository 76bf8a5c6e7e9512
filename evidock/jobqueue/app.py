"""procrastinate Apps built from config (never at import time): the worker's, whose
tasks close over the process's wired services, and the enqueuer's (:class:`JobQueue`),
used synchronously by the station service, the dock daemon and the scheduler."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate import exceptions as pq_errors
from sqlalchemy.engine import Engine, make_url

from config import Settings
from evidock.jobqueue.schema import ensure_schema
from evidock.jobqueue.tasks import JOB_TYPES, JobBody, JobType, Services
from integrity.codes import Code
from integrity.errors import QueueUnavailable


def require_queue(settings: Settings) -> str:
    """The queue database's libpq URL, or QueueUnavailable saying why there is none."""
    url = make_url(settings.catalog_url)
    backend = url.get_backend_name()
    if backend != "postgresql":
        shown = "SQLite (the embedded default)" if backend == "sqlite" else backend
        raise QueueUnavailable(
            "the job queue lives in the catalog's PostgreSQL database, and this station's "
            f"catalog is {shown}: renditions run "
            "in-process here, no worker is needed. For workers on several machines put the "
            'catalog on PostgreSQL (paths.catalog_url) and set [jobs] queue = "postgres"',
            catalog=url.render_as_string(), queue=settings.jobs.queue)
    if not settings.jobs.queued:
        raise QueueUnavailable(
            'no job queue is configured ([jobs] queue = "inline"): renditions run in the '
            'process that asks for them; set [jobs] queue = "postgres" to hand them to '
            "workers", catalog=url.render_as_string(), queue=settings.jobs.queue)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _bound(job: JobType, svc: Services) -> JobBody:
    def run(**args: Any) -> dict[str, Any]:
        return job.run(svc, **args)
    run.__name__ = run.__qualname__ = job.name
    return run


def worker_app(settings: Settings, svc: Services) -> procrastinate.App:
    """The worker's App: every job type bound to ``svc``; opened by the caller."""
    jobs = settings.jobs
    connector = procrastinate.PsycopgConnector(
        conninfo=require_queue(settings), min_size=2, max_size=jobs.concurrency + 4)
    app = procrastinate.App(connector=connector)
    retry = procrastinate.RetryStrategy(max_attempts=jobs.retries, wait=jobs.retry_wait_s)
    for job in JOB_TYPES.values():
        app.task(name=job.name, queue=job.queue, retry=retry)(_bound(job, svc))
    return app


@dataclass(frozen=True, kw_only=True)
class Deferred:
    job: str
    lock: str
    #: The new job's id; None when one for the same thing was already waiting.
    job_id: int | None

    def to_json(self) -> dict[str, Any]:
        """How the service answers work it handed to the workers (``I_JOB_QUEUED``)."""
        return {"status": "queued", "code": Code.I_JOB_QUEUED, "job": self.job,
                "job_id": self.job_id, "lock": self.lock}


class JobQueue:
    """Queues jobs (synchronously) for the workers. Built with the process's services,
    it connects (and creates the queue's tables if need be) on the first job queued;
    thread-safe, closed with the services."""

    def __init__(self, *, settings: Settings, engine: Engine) -> None:
        self.conninfo = require_queue(settings)
        self.engine = engine
        self._lock = threading.Lock()
        self._opened: procrastinate.App | None = None

    def _app(self) -> procrastinate.App:
        with self._lock:
            if self._opened is None:
                ensure_schema(self.engine)
                connector = procrastinate.SyncPsycopgConnector(conninfo=self.conninfo,
                                                               min_size=1, max_size=4)
                try:
                    self._opened = procrastinate.App(connector=connector).open()
                except pq_errors.ConnectorException as exc:
                    raise QueueUnavailable(f"cannot reach the job queue: {exc}") from exc
            return self._opened

    def defer(self, job: str, args: Mapping[str, Any]) -> Deferred:
        """Queue ``job``; a second one for the same thing while one waits is not added
        (its queueing lock), and two never run at once (its lock)."""
        kind = JOB_TYPES[job]
        lock = kind.lock(args)
        deferrer = self._app().configure_task(kind.name, queue=kind.queue, lock=lock,
                                           queueing_lock=lock)
        try:
            job_id = deferrer.defer(**dict(args))
        except pq_errors.AlreadyEnqueued:
            return Deferred(job=job, lock=lock, job_id=None)
        except pq_errors.ConnectorException as exc:
            raise QueueUnavailable(f"cannot queue {job}: {exc}", lock=lock) from exc
        return Deferred(job=job, lock=lock, job_id=job_id)

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.close()
                self._opened = None


__all__ = ["Deferred", "JobQueue", "require_queue", "worker_app"]
