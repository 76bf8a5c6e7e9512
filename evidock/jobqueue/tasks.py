"""The job types: one small function each, run by ``evidock worker`` with the station's
wired :class:`~evidock.wiring.Services`.

A job function takes the services and its JSON arguments (keyword-only) and returns a
small JSON summary (logged). It must be idempotent: the queue runs it at least once, and
again when its worker died mid-way (the heartbeat stopped) or when it was queued twice.
The :class:`JobType` names the argument that says what the job works on: the job's lock
(no two jobs on the same thing run at once, on any machine) and its queueing lock (one
waiting job per thing) are built from it.

Adding a job type: write the function, add one :class:`JobType` to :data:`JOB_TYPES`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from archive.catalog import Catalog
from ingest.process import Renderer
from records.centralfixity import RemoteFixity
from records.permissions import Actor, P


class Services(Protocol):
    """What jobs use of :class:`evidock.wiring.Services` (named here, not imported: the
    wiring builds the queue, so importing it back would be a cycle)."""

    catalog: Catalog

    def renderer(self) -> Renderer: ...

    def remote_fixity(self) -> RemoteFixity: ...


JobBody = Callable[..., dict[str, Any]]


@dataclass(frozen=True, kw_only=True)
class JobType:
    name: str
    #: procrastinate queue: a worker may be started for some queues only.
    queue: str
    #: The argument naming what the job works on (its lock is ``name:value``).
    subject: str
    run: JobBody

    def lock(self, args: Mapping[str, Any]) -> str:
        return f"{self.name}:{args[self.subject]}"


def render(svc: Services, *, recording_id: str) -> dict[str, Any]:
    """The recording's archival rendition (ingest/process.py), unless one is already
    finished (ok or none): then nothing is done, whoever made it."""
    renderer = svc.renderer()
    existing = renderer.done(recording_id)
    row = existing or renderer.render(svc.catalog.recording(recording_id))
    return {"recording_id": recording_id, "rendition_id": row.id, "status": row.status,
            "code": row.code, "made": existing is None}


#: A sweep's actor: a scheduled operator's act (audit.view), nothing else.
SWEEPER = Actor(name="system:worker", display="worker", roles=("system",),
                permissions=frozenset({P.AUDIT_VIEW}), units=frozenset(),
                clearances=frozenset())


def remote_fixity(svc: Services, *, station_id: str, sample: int) -> dict[str, Any]:
    """At a center: ``sample`` of the station's blobs checked in the object store
    (records/centralfixity.py; read-only, so running it twice only checks twice)."""
    out = svc.remote_fixity().sweep(SWEEPER, sample=sample, station=station_id)
    return {"station_id": station_id, "checked": out["checked"],
            "findings": len(out["findings"]),
            "codes": sorted({f["code"] for f in out["findings"]})}


JOB_TYPES: Mapping[str, JobType] = {jt.name: jt for jt in (
    JobType(name="render", queue="renditions", subject="recording_id", run=render),
    JobType(name="remote_fixity", queue="fixity", subject="station_id", run=remote_fixity),
)}

__all__ = ["JOB_TYPES", "SWEEPER", "JobType", "remote_fixity", "render"]
