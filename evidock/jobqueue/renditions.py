"""Renditions as jobs: what stands in for :class:`ingest.process.Renderer` where
``[jobs] queue = "postgres"``. The offload, `evidock process`, the dock daemon and the
scheduler's catch-up call ``render``/``catch_up`` as before; here those queue a ``render``
job for an ``evidock worker`` and answer ``queued`` (``I_RENDITION_QUEUED``)."""

from __future__ import annotations

from dataclasses import dataclass

from archive.catalog import Recording
from archive.catalog.models import Rendition
from evidock.jobqueue.app import JobQueue
from ingest.process import Renderer
from integrity.codes import Code


@dataclass(frozen=True, kw_only=True)
class Queued:
    """A rendition handed to the workers (the fields a made rendition answers with)."""

    recording_id: str
    job_id: int | None  # None: a job for this recording was already waiting
    status: str = "queued"
    code: str = Code.I_RENDITION_QUEUED
    merkle_root: str | None = None

    @property
    def reason(self) -> str:
        return (f"job {self.job_id}" if self.job_id is not None
                else "a job for this recording was already queued")


class QueuedRenditions:
    """``render`` queues a job unless the rendition is finished (then it is answered)."""

    def __init__(self, *, renderer: Renderer, queue: JobQueue) -> None:
        self.renderer = renderer
        self.queue = queue

    def pending(self) -> list[Recording]:
        return self.renderer.pending()

    def render(self, recording: Recording) -> Rendition | Queued:
        done = self.renderer.done(recording.id)
        if done is not None:
            return done
        deferred = self.queue.defer("render", {"recording_id": recording.id})
        return Queued(recording_id=recording.id, job_id=deferred.job_id)

    def catch_up(self, *, first: set[str], limit: int) -> list[Rendition | Queued]:
        """As :meth:`Renderer.catch_up`: ``first`` if still pending, then up to ``limit``
        never tried (a job still waiting is not queued again: its queueing lock)."""
        rows = [self.render(rec) for rec in self.pending() if rec.id in first]
        return rows + [self.render(rec) for rec in self.renderer.untried(limit=limit)]


__all__ = ["Queued", "QueuedRenditions"]
