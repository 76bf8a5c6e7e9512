"""What is done to an export request on the desk: approve or reject it (with a reason),
run it, download its package, and verify the package the station wrote.

Run and download are the API's own routes (:mod:`evidock.service.routes.exports`),
called with the page's user: the same export area, run lock and lifecycle, and the
same streamed tar (constant memory) the CLI downloads. A decision the service refuses
(the requester deciding their own request: E_SELF_APPROVAL; no ``export.approve``:
E_FORBIDDEN) becomes the error page with its code and audit event: buttons are never
hidden by role, the rule is the service's.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from evidock.service.routes import exports as api
from evidock.web.base import PREFIX, Desk, DeskCall, no_store, redirect, render
from evidock.web.pages.exports import request_page
from integrity.errors import NotFound
from integrity.findings import Finding
from integrity.package import is_failure, verify_package
from records.exportrun import finish

router = APIRouter(include_in_schema=False)


def _reason(call: DeskCall) -> str:
    value = call.form.get("reason", "")
    return value.strip() if isinstance(value, str) else ""


def _decide(call: DeskCall, request_id: str, decision: str) -> Response:
    reason = _reason(call)
    desk = call.svc.exports()
    if not reason:  # the desk asks one only to reject; the desk's page asks both
        view = desk.show(call.actor, request_id)
        return request_page(call, view, status=400, problem=call._(
            "Give a reason for your decision."))
    if decision == "approve":
        desk.approve(call.actor, request_id, reason=reason)
    else:
        desk.reject(call.actor, request_id, reason=reason)
    done = "approved" if decision == "approve" else "rejected"
    return redirect(f"{PREFIX}/exports/{request_id}?done={done}")


@router.post("/exports/{request_id}/approve")
def approve(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "approve")


@router.post("/exports/{request_id}/reject")
def reject(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "reject")


@router.post("/exports/{request_id}/run")
def run(call: Desk, request_id: str) -> Response:
    """Write the package once (``POST /api/v1/exports/{id}/run``)."""
    ran = api.run(request_id, call.actor, call.svc)
    done = "queued" if ran.get("status") == "queued" else "run"  # [jobs]: a worker runs it
    return redirect(f"{PREFIX}/exports/{request_id}?done={done}")


@router.get("/exports/{request_id}/download")
def download(call: Desk, request_id: str) -> StreamingResponse:
    """The package as the API streams it (an uncompressed tar, audited)."""
    answer = api.download(request_id, call.actor, call.svc)
    answer.headers["Cache-Control"] = "no-store"
    return answer


def _verify(call: DeskCall, request_id: str) -> list[Finding]:
    """``evidock verify`` of the package the station keeps, against the station's
    public keys (what ``--key`` gives a recipient)."""
    call.svc.exports().package(call.actor, request_id, read="export.verify")
    where = api.area(call.svc)
    call.svc.exports().tidy(where)  # the area's lifecycle first, as before a download
    with where.running(request_id) as top:
        finish(top)  # a run that died after recording it: publish first, as a download
        if not top.is_dir():
            raise NotFound(f"the station keeps no package of export request {request_id} "
                           "(kept until its approval ends, then removed)",
                           request=request_id)
        trusted = call.svc.keys.keyring().by_id()
        return verify_package(top, trusted=trusted)


@router.get("/exports/{request_id}/verification", response_class=HTMLResponse)
def verification(call: Desk, request_id: str) -> Response:
    """The package's verification (loaded into the request's page by htmx; a page of
    its own without script)."""
    findings = _verify(call, request_id)
    failed = [f for f in findings if is_failure(f)]
    return no_store(render(call, "exports/verification.html", request_id=request_id,
                           findings=findings, failed=failed))


__all__ = ["router"]
