"""Case records, links, stages, documents; recordings and their marks (included below).

A case is named by its number as the agency writes it (or its id) in a query parameter
or the body, never in the path: numbers are free Unicode and may hold ``/``, ``?`` or
``#``. Each endpoint calls the desk method the CLI command used to call in-process and
answers the JSON the command prints with ``--json``.
"""

from __future__ import annotations

from datetime import UTC

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.requests import ClientDisconnect

from evidock.service.blobs import BodyReader, open_blob, range_headers, send
from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes import recordings
from evidock.service.routes.recordings import Body, maybe_moment, moment, viewer
from integrity.errors import InvalidRequest

router = APIRouter(tags=["cases"])
router.include_router(recordings.router)


class CaseIn(Body):
    number: str
    type: str
    unit: str
    title: str = ""
    sensitivity: str = "none"


class LinkIn(Body):
    case: str
    recording: str
    stage: str
    reason: str
    start: str | None = None  # seconds, H:MM:SS or a zoned ISO time
    end: str | None = None


class ReasonIn(Body):
    reason: str


class CloseIn(Body):
    case: str
    reason: str
    date: str | None = None  # ISO; naive: station local time; default now


class ReopenIn(Body):
    case: str
    reason: str


class StageIn(Body):
    case: str
    stage: str
    start: str
    end: str
    note: str = ""


@router.post("/cases")
def create(body: CaseIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Open a case under its number as the agency writes it."""
    return svc.cases().create(actor, number=body.number, case_type=body.type,
                              unit=body.unit, title=body.title,
                              sensitivity=body.sensitivity).to_json()


@router.get("/cases")
def list_cases(actor: ActorDep, svc: ServicesDep, unit: str | None = None,
               status: str | None = None, type: str | None = None,  # noqa: A002
               ) -> dict[str, object]:
    """The cases you may see (others counted hidden in the audit event)."""
    cases = svc.dossier().list(actor, unit=unit, status=status, case_type=type)
    return {"cases": [c.to_json() for c in cases]}


@router.get("/cases/show")
def show(case: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Everything about a case: links (with removed ones), footage, stages, documents."""
    return svc.dossier().show(actor, case).to_json()


@router.post("/cases/close")
def close(body: CloseIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Close a case (retention periods run from the closing date)."""
    when = maybe_moment(body.date, svc.settings.station.local_zone, name="--date")
    return svc.cases().close(actor, body.case, reason=body.reason, closed_at=when).to_json()


@router.post("/cases/reopen")
def reopen(body: ReopenIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    return svc.cases().reopen(actor, body.case, reason=body.reason).to_json()


@router.post("/cases/links")
def link(body: LinkIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Link a recording (or [start, end) of it) to a case at a stage."""
    from records.package import parse_offset

    camera_start = svc.catalog.recording(body.recording).camera_start
    return svc.cases().link(
        actor, body.case, body.recording, stage=body.stage, reason=body.reason,
        start_us=None if body.start is None else parse_offset(body.start, camera_start),
        end_us=None if body.end is None else parse_offset(body.end, camera_start)).to_json()


@router.post("/cases/links/{link_id}/unlink")
def unlink(link_id: int, body: ReasonIn, actor: ActorDep, svc: ServicesDep,
           ) -> dict[str, object]:
    """Remove a link; the link and its removal stay in the case's history."""
    return svc.cases().unlink(actor, link_id, reason=body.reason).to_json()


@router.post("/cases/stages")
def stage(body: StageIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Record when a stage took place, from the written case record."""
    zone = svc.settings.station.local_zone
    row = svc.cases().stage(actor, body.case, stage=body.stage,
                            start_at=moment(body.start, zone, name="--start"),
                            end_at=moment(body.end, zone, name="--end"), note=body.note)
    return {"stage_id": row.id, "case": body.case, "stage": row.stage,
            "start_at": row.start_at.astimezone(UTC).isoformat(),
            "end_at": row.end_at.astimezone(UTC).isoformat(), "note": body.note}


@router.post("/cases/documents")
async def attach(request: Request, *, case: str, filename: str, actor: ActorDep,
                 svc: ServicesDep, description: str = "") -> dict[str, object]:
    """Store a document the client sends as the raw body (Content-Length required):
    hashed while copied into the store, re-read, committed by hash."""
    size = request.headers.get("content-length")
    if size is None or not size.isdigit():
        raise InvalidRequest("a document is sent with its Content-Length", filename=filename)
    reader = BodyReader(request.stream())
    try:
        row = await anyio.to_thread.run_sync(lambda: svc.cases().receive(
            actor, case, reader, filename=filename, size=int(size),
            description=description))
    except ClientDisconnect:
        raise InvalidRequest("the client went away mid-upload; nothing was stored",
                             filename=filename) from None
    return {"attachment": row.id, "filename": row.filename, "size": row.size,
            "blake3": row.blake3, "sha256": row.sha256, "description": row.description}


@router.get("/cases/documents", response_model=None)
def document(case: str, digest: str, actor: ActorDep, svc: ServicesDep) -> Response:
    """A case document's bytes by its BLAKE3 or SHA-256, to whoever may view the case
    (audited); the digests come as headers so the client checks what it got."""
    blob = viewer(svc).document(actor, case, digest)
    fh = open_blob(blob)
    return StreamingResponse(send(fh, blob, 0, blob.size),
                             media_type="application/octet-stream",
                             headers=range_headers(blob, 0, blob.size))


__all__ = ["router"]
