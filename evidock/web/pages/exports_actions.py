"""What is done to an export request on the desk: approve or reject it (with a reason),
run it, download its package, and verify the package the station wrote.

Run and download are the API's own routes (:mod:`evidock.service.routes.exports`),
called with the page's user: the same export area, run lock and lifecycle, and the
same streamed tar (constant memory) the CLI downloads. A decision the service refuses
(the requester deciding their own request: E_SELF_APPROVAL; no ``export.approve``:
E_FORBIDDEN) becomes the error page with its code and audit event: buttons are never
hidden by role, the rule is the service's. The center's export pages decide and run
through :func:`decide` and :func:`after_run` too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from evidock.service.export_packages import held
from evidock.service.routes import exports as api
from evidock.web.base import PREFIX, Desk, DeskCall, no_store, redirect, render
from evidock.web.pages.exports import request_page
from integrity.findings import Finding
from integrity.package import is_failure, verify_package
from records.exportbook import RequestView
from records.permissions import Actor

router = APIRouter(include_in_schema=False)


class Decisions(Protocol):
    """What of an export desk (a station's or the center's) a decision form uses."""

    def show(self, actor: Actor, request_id: str) -> RequestView: ...

    def approve(self, actor: Actor, request_id: str, *, reason: str = "") -> RequestView: ...

    def reject(self, actor: Actor, request_id: str, *, reason: str) -> RequestView: ...


RequestPage = Callable[..., Response]


def decide(call: DeskCall, desk: Decisions, request_id: str, decision: str, *,
           page: RequestPage, back: str) -> Response:
    """Approve or reject with the form's reason; without one, the request's ``page``
    again with the message. Then back to ``back``, the request's page."""
    value = call.form.get("reason", "")
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:  # the desk asks one only to reject; the page asks both
        return page(call, desk.show(call.actor, request_id), status=400,
                    problem=call._("Give a reason for your decision."))
    if decision == "approve":
        desk.approve(call.actor, request_id, reason=reason)
    else:
        desk.reject(call.actor, request_id, reason=reason)
    done = "approved" if decision == "approve" else "rejected"
    return redirect(f"{back}?done={done}")


def after_run(ran: Mapping[str, object], back: str) -> Response:
    """Back to the request's page, saying whether it ran or was queued."""
    done = "queued" if ran.get("status") == "queued" else "run"  # [jobs]: a worker runs it
    return redirect(f"{back}?done={done}")


def _decide(call: DeskCall, request_id: str, decision: str) -> Response:
    return decide(call, call.svc.exports(), request_id, decision, page=request_page,
                  back=f"{PREFIX}/exports/{request_id}")


@router.post("/exports/{request_id}/approve")
def approve(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "approve")


@router.post("/exports/{request_id}/reject")
def reject(call: Desk, request_id: str) -> Response:
    return _decide(call, request_id, "reject")


@router.post("/exports/{request_id}/run")
def run(call: Desk, request_id: str) -> Response:
    """Write the package once (``POST /api/v1/exports/{id}/run``)."""
    return after_run(api.run(request_id, call.actor, call.svc),
                     f"{PREFIX}/exports/{request_id}")


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
    with held(call.svc.exports(), api.area(call.svc), request_id,
              keeper="station") as top:
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


__all__ = ["Decisions", "after_run", "decide", "router"]
