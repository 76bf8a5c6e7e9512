"""Export requests, approvals, runs and downloads.

Every rule stays in :class:`records.exports.ExportDesk` (two-person rule, one run per
approval, units and labels). A run writes the packages into the service's own export
area (:class:`records.exportarea.ExportArea`, ``$EVIDOCK_HOME/exports/<request id>/``)
and answers with the files to fetch; the client then downloads them as a streamed tar
and checks each against that listing. A request already run can be downloaded again
(``export.run`` on its cases, audited as a read), e.g. by the web desk, until its
approval ends; the area's lifecycle is applied before each run and download
(:meth:`records.exports.ExportDesk.tidy`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict

from evidock.service import export_packages as packages
from evidock.service.deps import ActorDep, ServicesDep
from evidock.wiring import Services
from records.exportarea import ExportArea
from records.exportrun import remove_partial

router = APIRouter(tags=["exports"])


class RequestBody(BaseModel):
    """``export request``: a case (every linked range) or a recording (a range of it)."""

    model_config = ConfigDict(extra="forbid")
    purpose: str
    recipient: str
    case: str | None = None
    recording: str | None = None
    start: str | None = None
    end: str | None = None
    reason: str = ""
    exact: bool = False
    originals: bool = False
    redaction: str | None = None


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = ""


def area(svc: Services) -> ExportArea:
    return svc.export_area()


@router.post("/exports")
def request(body: RequestBody, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Ask to take footage out of the archive (pending until someone else decides)."""
    return svc.exports().request(actor, **body.model_dump()).to_json()


@router.get("/exports")
def list_(actor: ActorDep, svc: ServicesDep,
          status: Annotated[str | None, Query()] = None,
          case: Annotated[str | None, Query()] = None) -> dict[str, object]:
    """Requests the caller may see, oldest first."""
    views = svc.exports().list(actor, status=status, case=case)
    return {"requests": [v.to_json() for v in views]}


@router.get("/exports/{request_id}")
def show(request_id: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    return svc.exports().show(actor, request_id).to_json()


@router.post("/exports/{request_id}/approve")
def approve(request_id: str, body: DecisionBody, actor: ActorDep,
            svc: ServicesDep) -> dict[str, object]:
    return svc.exports().approve(actor, request_id, reason=body.reason).to_json()


@router.post("/exports/{request_id}/reject")
def reject(request_id: str, body: DecisionBody, actor: ActorDep,
           svc: ServicesDep) -> dict[str, object]:
    return svc.exports().reject(actor, request_id, reason=body.reason).to_json()


@router.post("/exports/{request_id}/run")
def run(request_id: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Write the packages of an approved request (once) into the export area; answer
    with them and the files to download. Holding the request's run lock, a run that
    died is resumed (records.exportrun). With a job queue the run is checked here and
    handed to a worker (``export`` job): nothing to download yet."""
    return packages.run(svc, svc.exports(), area(svc), job="export",
                        request_id=request_id, actor=actor)


@router.post("/exports/{request_id}/discard")
def discard(request_id: str, body: DecisionBody, actor: ActorDep,
            svc: ServicesDep) -> dict[str, object]:
    """End an approved request, or one whose run died, for good (its leftovers go)."""
    where = area(svc)
    try:
        with where.running(request_id) as top:
            view = svc.exports().discard(actor, request_id, reason=body.reason,
                                         exclusive=True)
            remove_partial(top)
    except OSError as exc:
        raise packages.area_error(where, exc) from exc
    return view.to_json()


@router.get("/exports/{request_id}/files")
def files(request_id: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """The files of a request already run, with sizes and SHA-256 (for a download)."""
    view = svc.exports().package(actor, request_id, read="export.files")
    return {"request_id": request_id, "exports": list(view.exports),
            "files": packages.files_json(_kept(svc, request_id).files(request_id))}


@router.get("/exports/{request_id}/download")
def download(request_id: str, actor: ActorDep, svc: ServicesDep) -> StreamingResponse:
    """The packages of a request already run, as an uncompressed tar (streamed)."""
    svc.exports().package(actor, request_id)
    return packages.tar(_kept(svc, request_id), request_id)


def _kept(svc: Services, request_id: str) -> ExportArea:
    """The area with the request's package in place (a dead run's published)."""
    return packages.kept(svc.exports(), area(svc), request_id)
