"""What is done to a center export request on the desk: approve or reject it (with a
reason), run it, download its package, verify the package the center wrote, and the
station's public key a recipient needs for that.

As on the station's export pages (:mod:`evidock.web.pages.exports_actions`): decisions
call :class:`records.centralexports.CentralExportDesk`, whose refusals (the requester
deciding their own request: E_SELF_APPROVAL; no ``export.approve`` or a recording the
user may not see: E_FORBIDDEN) become the error page with the code and the audit event;
buttons are never hidden by role. Run and download are the API's own route functions
(:mod:`evidock.service.routes.center_exports`): the center's export area, its run lock
and lifecycle, and the same streamed tar the CLI downloads.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from evidock.service.export_packages import held
from evidock.service.routes import center_exports as api
from evidock.web.base import Desk, DeskCall, no_store, render
from evidock.web.pages.center import witnessed
from evidock.web.pages.center_exports import page_of, request_page
from evidock.web.pages.exports import key_file
from evidock.web.pages.exports_actions import after_run, decide
from integrity.findings import Finding
from integrity.package import is_failure, verify_package

router = APIRouter(include_in_schema=False)


def _decide(call: DeskCall, request_id: str, decision: str) -> Response:
    witnessed(call)
    return decide(call, call.svc.central_exports(), request_id, decision,
                  page=request_page, back=page_of(request_id))


@router.post("/center/exports/{request_id}/approve")
def approve(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "approve")


@router.post("/center/exports/{request_id}/reject")
def reject(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "reject")


@router.post("/center/exports/{request_id}/run")
def run(call: Desk, request_id: str) -> Response:
    """Read back, prove and package the clip once (``POST /api/v1/center/exports/{id}/
    run``): here, or by a worker when the service has a job queue."""
    witnessed(call)
    return after_run(api.run(request_id, call.actor, call.svc), page_of(request_id))


@router.get("/center/exports/{request_id}/download")
def download(call: Desk, request_id: str) -> StreamingResponse:
    """The package as the API streams it (an uncompressed tar, audited)."""
    witnessed(call)
    answer = api.download(request_id, call.actor, call.svc)
    answer.headers["Cache-Control"] = "no-store"
    return answer


@router.get("/center/exports/{request_id}/station-key.pem")
def station_key(call: Desk, request_id: str) -> Response:
    """The current public key of the request's station (``--key`` of a recipient's
    ``evidock verify``), from the keyring the center's config trusts for it."""
    witnessed(call)
    view = call.svc.central_exports().show(call.actor, request_id)  # refuses, audits
    assert view.station_id is not None
    key = call.svc.central_player().keyring_for(view.station_id).current_key
    return Response(key.to_pem(), media_type="application/x-pem-file", headers={
        "Content-Disposition": f'attachment; filename="{key_file(key.key_id)}"'})


def _verify(call: DeskCall, request_id: str) -> list[Finding]:
    """``evidock verify --key STATION --center-key CENTER`` of the package the center
    keeps: the manifest against the station's keys the center trusts, clip.json against
    the center's own."""
    view = call.svc.central_exports().package(call.actor, request_id,
                                              read="center.export.verify")
    assert view.station_id is not None
    with held(call.svc.central_exports(), api.area(call.svc), request_id,
              keeper="center") as top:
        station = call.svc.central_player().keyring_for(view.station_id).by_id()
        return verify_package(top, trusted=station, center=call.svc.keys.keyring().by_id())


@router.get("/center/exports/{request_id}/verification", response_class=HTMLResponse)
def verification(call: Desk, request_id: str) -> Response:
    """The package's verification (loaded into the request's page by htmx; a page of
    its own without script)."""
    witnessed(call)
    findings = _verify(call, request_id)
    failed = [f for f in findings if is_failure(f)]
    return no_store(render(call, "exports/verification.html", request_id=request_id,
                           findings=findings, failed=failed, center=True,
                           back=page_of(request_id)))


__all__ = ["router"]
