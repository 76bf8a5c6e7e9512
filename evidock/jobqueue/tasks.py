"""The job types: one small function each, run by ``evidock worker`` with the station's
wired :class:`~evidock.wiring.Services`.

A job function takes the services and its JSON arguments (keyword-only) and returns a
small JSON summary (logged). It must be idempotent: the queue runs it at least once, and
again when its worker died mid-way (the heartbeat stopped) or when it was queued twice.
The :class:`JobType` names the argument that says what the job works on: the job's lock
(no two jobs on the same thing run at once, on any machine) and its queueing lock (one
waiting job per thing) are built from it.

Adding a job type: write the function, add one :class:`JobType` to :data:`JOB_TYPES`.
Jobs asked for by a person (a still, a redaction render, an export run, a center's
export run) carry the user's name; the worker acts as that user through the same desk
method, which checks again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlmodel import Session

from archive.catalog import Catalog
from archive.replica.queue import UploadQueue
from archive.store import ContentStore
from config import Settings
from ingest.process import Renderer
from integrity.errors import Conflict, EvidockError, InvalidRequest, NotFound, Refused
from records.centralexports import CentralExportDesk
from records.centralfixity import RemoteFixity
from records.exportarea import ExportArea
from records.exportbook import CENTER, STATION, Ledger, load_requests
from records.exportrun import finish
from records.exports import ExportDesk
from records.footage_thumbs import Thumbnails
from records.permissions import Actor, Gate, P
from records.redactionbook import load_one
from records.redactions import RedactionDesk


class Services(Protocol):
    """What jobs use of :class:`evidock.wiring.Services` (named here, not imported: the
    wiring builds the queue, so importing it back would be a cycle)."""

    catalog: Catalog
    settings: Settings
    store: ContentStore

    @property
    def clock(self) -> Callable[[], datetime]: ...

    def renderer(self) -> Renderer: ...

    def remote_fixity(self) -> RemoteFixity: ...

    def gate(self) -> Gate: ...

    def exports(self) -> ExportDesk: ...

    def export_area(self) -> ExportArea: ...

    def central_exports(self) -> CentralExportDesk: ...

    def center_export_area(self) -> ExportArea: ...

    def redactions(self) -> RedactionDesk: ...

    def upload_queue(self) -> UploadQueue: ...


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


#: What the desk refuses stays refused when the job runs again: reported as the job's
#: result (the refusal itself is audited by the desk), never retried.
_FINAL = (Refused, NotFound, Conflict, InvalidRequest)


def _refused(exc: EvidockError, **subject: str) -> dict[str, Any]:
    return {**subject, "made": False, "refused": exc.code, "message": exc.message[:300]}


def thumbnails(svc: Services, *, recording_id: str, actor: str) -> dict[str, Any]:
    """The recording's still (records/footage_thumbs.py), made for the user who asked
    the desk, their permission checked again; one that exists is answered."""
    desk = Thumbnails(catalog=svc.catalog, store=svc.store, gate=svc.gate())
    try:
        still = desk.make(svc.gate().by_name(actor), recording_id)
    except _FINAL as exc:
        return _refused(exc, recording_id=recording_id)
    return {"recording_id": recording_id, "rendition_id": still.rendition_id,
            "blake3": still.blake3, "made": still.made}


def redaction(svc: Services, *, redaction_id: str, actor: str) -> dict[str, Any]:
    """Render a redaction's plan in force (records/redactions.py) as the user who asked;
    a plan rendered already (by an earlier run of this job, or anyone) is answered."""
    try:
        done = load_one(svc.catalog, redaction_id).render_step
        made = done is None
        if made:
            done = svc.redactions().render(svc.gate().by_name(actor),
                                           redaction_id).render_step
    except _FINAL as exc:
        return _refused(exc, redaction_id=redaction_id)
    assert done is not None
    return {"redaction_id": redaction_id, "output_blake3": done.output_blake3,
            "made": made}


def export(svc: Services, *, request_id: str, actor: str) -> dict[str, Any]:
    """Run an approved export request (records/exports.py) as the user who asked, into
    the service's export area holding the request's run lock, as the service does: a
    run a killed worker left ``running`` is resumed (the approval was spent once, by the
    first), a used request's package only published if its rename never happened."""
    return _run_export(svc, svc.exports(), svc.export_area(), STATION,
                       request_id=request_id, actor=actor)


def center_export(svc: Services, *, request_id: str, actor: str) -> dict[str, Any]:
    """At a center: run an approved center export request (records/centralexports.py)
    as :func:`export` runs a station's: as the user who asked, into the center's export
    area holding the request's run lock; a dead run resumed, a used one only published."""
    return _run_export(svc, svc.central_exports(), svc.center_export_area(), CENTER,
                       request_id=request_id, actor=actor)


def _run_export(svc: Services, desk: ExportDesk | CentralExportDesk, where: ExportArea,
                ledger: Ledger, *, request_id: str, actor: str) -> dict[str, Any]:
    """The run both export jobs share; ``ledger`` says which requests ``desk`` keeps."""
    desk.tidy(where)
    with where.running(request_id) as top:
        with Session(svc.catalog.engine) as s:
            found = load_requests(s, now=svc.clock(), ids=[request_id], ledger=ledger)
        if found and found[0].status == "used":
            return {"request_id": request_id, "made": False, "published": finish(top),
                    "exports": list(found[0].exports)}
        try:
            made = desk.run(svc.gate().by_name(actor), request_id, out=top, exclusive=True)
        except _FINAL as exc:
            return _refused(exc, request_id=request_id)
    return {"request_id": request_id, "made": True,
            "exports": [p.export_id for p in made]}


def upload(svc: Services, *, blake3: str) -> dict[str, Any]:
    """One blob's WORM copy (archive/replica/queue.py), attempted once if its queue item
    is due; verified (or withdrawn, failed) is answered; one leased by another run, or
    waiting out its backoff, is left to the pass that queues it again when due."""
    queue = svc.upload_queue()
    item = queue.item(blake3)
    state = "unknown" if item is None else item.state
    if state in ("queued", "uploading"):
        report = queue.run_due(now=svc.clock(), limit=1, only=blake3)
        if report.items:
            out = report.items[0]
            return {"blake3": blake3, "made": out.state == "verified", "state": out.state,
                    "code": out.code, "attempts": out.attempts}
    return {"blake3": blake3, "made": False, "state": state}


JOB_TYPES: Mapping[str, JobType] = {jt.name: jt for jt in (
    JobType(name="render", queue="renditions", subject="recording_id", run=render),
    JobType(name="remote_fixity", queue="fixity", subject="station_id", run=remote_fixity),
    JobType(name="thumbnails", queue="thumbnails", subject="recording_id", run=thumbnails),
    JobType(name="redaction", queue="redactions", subject="redaction_id", run=redaction),
    JobType(name="export", queue="exports", subject="request_id", run=export),
    JobType(name="center_export", queue="exports", subject="request_id",
            run=center_export),
    JobType(name="upload", queue="uploads", subject="blake3", run=upload),
)}

__all__ = ["JOB_TYPES", "SWEEPER", "JobType", "center_export", "export", "redaction",
           "remote_fixity", "render", "thumbnails", "upload"]
