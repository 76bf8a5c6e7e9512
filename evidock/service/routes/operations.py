"""Station operations: offload, renditions, salvage, stored verification, keys, uploads,
dock status.

The service does the work as its own account (it reads the camera, writes the store,
signs with the key); the user only asks, and each answer is the JSON the command used
to print with ``--json``. Permissions: offloading, renditions and salvage need
``ingest.run`` (officers and clerks at the station); uploads ``upload.run`` (admin);
verifying a stored recording ``recording.view`` of it; the overdue report
``equipment.view`` (it names cameras and officers: equipment, not case coverage, which
clerks hold); the public keyring and the dock's bays any identified user.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from evidock.service import station_ops as ops
from evidock.service.deps import ActorDep, ServicesDep
from integrity.codes import Code
from integrity.errors import ConfigError, NotFound
from records.permissions import P

router = APIRouter(tags=["operations"])


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OffloadIn(Body):
    source: str  # absolute, as the client resolved it; checked against the asker
    device: str
    officer: str | None = None
    model: str | None = None
    wipe: bool = False
    process: bool = True


class RenditionsIn(Body):
    recording: str | None = None
    all: bool = False


class RecordingIn(Body):
    recording: str


class UploadRunIn(Body):
    limit: int = Field(default=1000, ge=1)
    retry_failed: bool = False


class SyncIn(Body):
    full: bool = False


@router.post("/offloads")
def offload(body: OffloadIn, request: Request, actor: ActorDep,
            svc: ServicesDep) -> dict[str, Any]:
    """Offload a camera directory the asker could read; renditions of what is new."""
    from ingest.outcome import OffloadRequest

    svc.gate().require(actor, P.INGEST_RUN, subjects=[f"device:{body.device}"])
    ops.known_model(svc, body.model)
    source = ops.source_for(svc, actor, request, body.source, wipe=body.wipe)
    # The offload's own events are the station's; who asked for it (and for a wipe) is
    # this one, committed before the camera is touched.
    svc.audit().record(actor=actor.audit_name, action="ingest.request",
                       subjects=[f"device:{body.device}", f"source:{source}"],
                       details={"officer": body.officer, "model": body.model,
                                "wipe": body.wipe, "process": body.process},
                       at=svc.clock())
    report = svc.offloader().run(OffloadRequest(
        source=source, device_serial=body.device, officer_id=body.officer,
        camera_model=body.model, wipe_after_verify=body.wipe))
    made = body.process and report.outcome not in ("interrupted", "failed")
    return {**report.to_json(), "renditions": ops.renditions_of(svc, report) if made else []}


@router.post("/renditions")
def renditions(body: RenditionsIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Make the missing renditions of one recording, or of every pending one (queue
    them for the workers when a job queue is configured: status "queued")."""
    gate = svc.gate()
    gate.require(actor, P.INGEST_RUN)
    renderer = svc.renditions()
    if body.recording is not None:
        rec = svc.catalog.recording(body.recording)
        ops.require_recording(svc, actor, P.INGEST_RUN, rec.id)
        rows = [renderer.render(rec)]
    elif body.all:
        # Every pending one is made; the answer names only those the asker may see.
        rows = [renderer.render(r) for r in renderer.pending()]
        shown = ops.visible(svc, actor, [r.recording_id for r in rows])
        rows = [r for r in rows if r.recording_id in shown]
    else:
        raise NotFound("name a recording id or pass --all")
    return {"renditions": [{"recording_id": r.recording_id, "status": r.status,
                            "code": r.code, "reason": r.reason,
                            "merkle_root": r.merkle_root} for r in rows]}


@router.post("/derivatives")
def recover(body: RecordingIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Salvage what is readable of a damaged recording, as a labelled derivative."""
    from ingest.salvage import Recoverer

    rec = svc.catalog.recording(body.recording)
    ops.require_recording(svc, actor, P.INGEST_RUN, rec.id)
    row = Recoverer(store=svc.store, catalog=svc.catalog, prober=svc.prober,
                    clock=svc.clock).recover(rec)
    return {"derivative_id": row.id, "status": row.status, "code": row.code,
            "reason": row.reason, "label": row.label, "blake3": row.blake3}


@router.get("/verify")
def verify_recording(recording: str, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Verify a stored recording: blobs, signed manifest, every digest (audited read)."""
    from archive.verify_stored import StoredVerifier
    from integrity.package import is_failure

    rec = svc.catalog.recording(recording)
    ops.require_recording(svc, actor, P.RECORDING_VIEW, rec.id)
    findings = StoredVerifier(store=svc.store, catalog=svc.catalog,
                              keys=svc.keys).verify(rec.id)
    failed = [f for f in findings if is_failure(f)]
    svc.gate().read(actor, "recording.verify", [f"recording:{rec.id}"],
                    {"findings": len(findings), "failed": len(failed)})
    return {"target": recording, "ok": not failed, "findings": [f.to_dict() for f in findings]}


@router.get("/keys")
def keys(_actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """The current key id and every public key kept for verification."""
    ring = svc.keys.keyring()
    return {"current": ring.current, "profile": ring.profile,
            "alg": ring.current_key.alg, "keys": [k.key_id for k in ring.keys]}


@router.get("/keys/public")
def public_key(_actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """The current public key as PEM, to publish for verifiers."""
    key = svc.keys.keyring().current_key
    return {"key_id": key.key_id, "pem": key.to_pem().decode("ascii")}


@router.get("/keys/keyring")
def public_keyring(_actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Every public key this service ever signed with, as the keyring file a center (or a
    station trusting its center) names in its config."""
    return svc.keys.keyring().to_dict()


@router.get("/uploads/status")
def upload_status(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """What is queued, due now, verified and failed (with codes), and bytes left."""
    svc.gate().require(actor, P.UPLOAD_RUN)
    status: dict[str, Any] = svc.upload_queue().status(now=svc.clock()).to_dict()
    return status


@router.post("/uploads/run")
def upload_run(body: UploadRunIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Queue every blob not yet queued, then upload and verify what is due."""
    from evidock.jobs import upload_pass

    svc.gate().require(actor, P.UPLOAD_RUN)
    if svc.job_queue is not None:  # [jobs] queue: workers upload, one job per due blob
        from evidock.jobqueue.uploads import queue_uploads

        queued = queue_uploads(svc, limit=body.limit, retry_failed=body.retry_failed)
        return {**queued, "attempted": 0, "verified": 0, "queued": 0, "failed": 0,
                "problems": [], "code": Code.I_JOB_QUEUED}
    added, done = upload_pass(svc, limit=body.limit, retry_failed=body.retry_failed)
    counts = {s: sum(1 for i in done if i.state == s) for s in ("verified", "queued",
                                                                "failed")}
    return {"enqueued": added, "attempted": len(done), **counts,
            "problems": [{"blake3": i.blake3, "state": i.state, "code": i.code}
                         for i in done if i.state != "verified"]}


@router.post("/uploads/sync-retention")
def sync_retention(body: SyncIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Remote locks and legal holds to the retention plan; audited as the asker."""
    from evidock import jobs

    svc.gate().require(actor, P.UPLOAD_RUN)
    svc.upload_queue()  # E_CONFIG unless [upload] is enabled
    result: dict[str, Any] = jobs.execute("remote_retention", svc, actor=actor.audit_name,
                                          full=body.full).to_dict()
    return result


@router.get("/dock/status")
def dock_status(_actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Each bay as the dock daemon last wrote it, and whether the daemon runs."""
    from docks.settings import status_file
    from docks.status import read_status

    path = status_file(svc.settings)
    doc: dict[str, Any] = read_status(path) or {"bays": {}, "unregistered": [], "ignored": 0}
    doc["running"] = ops.pid_alive(doc.get("pid"))
    doc["status_file"] = str(path)
    doc["timestamps"] = _timestamp_status(svc)
    return doc


def _timestamp_status(svc: ServicesDep) -> dict[str, Any]:
    """How many signed manifests and tree heads still wait for an RFC 3161 token."""
    from archive.timestamp_rows import pending_count

    with svc.catalog.engine.connect() as conn:
        pending = pending_count(conn)
    return {"pending": pending, "tsas": len(svc.settings.timestamps.tsa_urls)}


@router.get("/dock/overdue")
def dock_overdue(actor: ActorDep, svc: ServicesDep,
                 window: Annotated[str | None, Query()] = None) -> dict[str, Any]:
    """Cameras and officers not offloaded within the window (default dock.overdue_window_h)."""
    from docks.overdue import overdue, parse_window

    svc.gate().require(actor, P.EQUIPMENT_VIEW)
    try:
        span = parse_window(window) if window else \
            timedelta(hours=svc.settings.dock.overdue_window_h)
    except ValueError as exc:
        raise ConfigError(str(exc), key="--window") from exc
    rows = [r.to_json() for r in overdue(svc.catalog, now=svc.clock(), window=span)]
    hours = span.total_seconds() / 3600
    svc.gate().read(actor, "dock.overdue", [],  # audit details carry no floats
                    {"window_s": int(span.total_seconds()), "overdue": len(rows)})
    return {"window_h": hours, "overdue": rows}


__all__ = ["router"]
