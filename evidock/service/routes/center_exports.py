"""Exports from the center: a clip of a station's recording, read back and proven.

Every rule stays in :class:`records.centralexports.CentralExportDesk` (two-person rule,
one run per approval, the units and labels of the recording's cases). A run writes the
package into the center's own export area (``$EVIDOCK_HOME/center-exports/<request
id>/``, apart from the station exports' area, whose lifecycle knows only station
requests) and answers with the files to fetch; the client downloads them as a streamed
tar, as from a station.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from evidock.service import export_packages as packages
from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.exports import DecisionBody
from evidock.wiring import Services
from records.exportarea import ExportArea

router = APIRouter(tags=["center"])

StationId = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class CenterRequestBody(BaseModel):
    """A clip [start, end) of one station's recording (seconds or H:MM:SS)."""

    model_config = ConfigDict(extra="forbid")
    station: StationId
    recording: str = Field(min_length=1, max_length=200)
    start: str = Field(min_length=1, max_length=64)
    end: str = Field(min_length=1, max_length=64)
    purpose: str
    recipient: str
    reason: str = ""
    originals: bool = False  # the camera file too, restored from the object store


def area(svc: Services) -> ExportArea:
    return svc.center_export_area()


@router.post("/center/exports")
def request(body: CenterRequestBody, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Ask to take a clip of a station's recording out of the center (pending until
    someone else decides)."""
    return svc.central_exports().request(actor, **body.model_dump()).to_json()


@router.get("/center/exports")
def list_(actor: ActorDep, svc: ServicesDep,
          status: Annotated[str | None, Query(max_length=16)] = None) -> dict[str, object]:
    views = svc.central_exports().list(actor, status=status)
    return {"requests": [v.to_json() for v in views]}


@router.get("/center/exports/{request_id}")
def show(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    return svc.central_exports().show(actor, request_id).to_json()


@router.post("/center/exports/{request_id}/approve")
def approve(request_id: RequestId, body: DecisionBody, actor: ActorDep,
            svc: ServicesDep) -> dict[str, object]:
    return svc.central_exports().approve(actor, request_id, reason=body.reason).to_json()


@router.post("/center/exports/{request_id}/reject")
def reject(request_id: RequestId, body: DecisionBody, actor: ActorDep,
           svc: ServicesDep) -> dict[str, object]:
    return svc.central_exports().reject(actor, request_id, reason=body.reason).to_json()


@router.post("/center/exports/{request_id}/run")
def run(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Read back, prove and package the clip of an approved request (once). With a job
    queue the run is checked here and handed to a worker (``center_export`` job)."""
    return packages.run(svc, svc.central_exports(), area(svc), job="center_export",
                        request_id=request_id, actor=actor)


def _kept(svc: Services, request_id: str) -> ExportArea:
    return packages.kept(svc.central_exports(), area(svc), request_id)


@router.get("/center/exports/{request_id}/files")
def files(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    view = svc.central_exports().package(actor, request_id, read="center.export.files")
    return {"request_id": request_id, "exports": list(view.exports),
            "files": packages.files_json(_kept(svc, request_id).files(request_id))}


@router.get("/center/exports/{request_id}/download")
def download(request_id: RequestId, actor: ActorDep, svc: ServicesDep) -> StreamingResponse:
    """The package of a request already run, as an uncompressed tar (streamed)."""
    svc.central_exports().package(actor, request_id)
    return packages.tar(_kept(svc, request_id), request_id)
