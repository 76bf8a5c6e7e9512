"""Upload retries as jobs: what stands in for the upload pass (evidock/jobs.py
``upload_pass``) where ``[jobs] queue = "postgres"``. The scheduler's ``upload`` job and
``POST /uploads/run`` queue new blobs in the upload queue as before, then hand every
item that is due to the workers, one ``upload`` job per blob: its lock is the blob, so
two workers never upload one blob at once and a blob waiting is queued once; the item's
own state (verified, its backoff, its lease) makes a second run a no-op.

No procrastinate here: the services' :class:`~evidock.jobqueue.app.JobQueue` queues.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from archive.catalog import Catalog
from archive.replica.queue import UploadItem

if TYPE_CHECKING:
    from evidock.wiring import Services


def due(catalog: Catalog, *, now: datetime, limit: int) -> list[str]:
    """The blobs whose queue item is due at ``now`` (oldest due first), as run_due
    would take them."""
    with Session(catalog.engine) as s:
        return list(s.exec(select(UploadItem.blake3).where(
            col(UploadItem.state).in_(("queued", "uploading")),
            col(UploadItem.next_attempt_at) <= now)
            .order_by(col(UploadItem.next_attempt_at)).limit(limit)))


def queue_uploads(svc: Services, *, limit: int, retry_failed: bool = False,
                  ) -> dict[str, Any]:
    """Queue every blob not yet queued, then one ``upload`` job per due item (up to
    ``limit``); counts: ``enqueued`` (new upload items), ``jobs`` (one per due blob,
    ``new_jobs`` of them added: the others were waiting already)."""
    assert svc.job_queue is not None
    queue, now = svc.upload_queue(), svc.clock()
    if retry_failed:
        queue.requeue_failed(now=now)
    added = queue.enqueue_missing(
        now=now, retain_until=now + timedelta(days=svc.settings.upload.retention_days))
    jobs = [svc.job_queue.defer("upload", {"blake3": b3})
            for b3 in due(svc.catalog, now=now, limit=limit)]
    return {"enqueued": added, "jobs": len(jobs),
            "new_jobs": sum(1 for j in jobs if j.job_id is not None)}


__all__ = ["due", "queue_uploads"]
