"""What a case's page posts: close, reopen, relabel, stage times, a document.

Each form calls the desk method its API route calls; a refused form re-shows the case's
page with the message next to that form. A document is streamed into the store as the
API's upload is (``CaseDesk.receive``): the multipart body is parsed by Starlette into
a spooled temporary file (at most 1 MiB in memory, the rest on disk), which the store
copies and hashes piece by piece, so memory stays constant whatever the file's size.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from evidock.service.login import Call
from evidock.service.routes.recordings import maybe_moment, moment
from evidock.service.routes.sessions import web_desk
from evidock.service.websession import COOKIE
from evidock.web.base import Desk, DeskCall, NotLoggedIn, desk_call, redirect
from evidock.web.i18n import pick, words
from evidock.web.pages.cases import case_page, case_url, invalid_words, load_case
from integrity.errors import Conflict, Forbidden, InvalidRequest, NotFound
from records.permissions import P

router = APIRouter(include_in_schema=False)


def _reason(call: DeskCall) -> str:
    value = call.form.get("reason")
    return value.strip() if isinstance(value, str) else ""


def _again(call: DeskCall, number: str, form: str, message: str, status: int = 400,
           ) -> Response:
    return case_page(call, number, status=status, problem=(form, message))


@router.post("/cases/{number}/close", response_model=None)
def close_case(call: Desk, number: str) -> Response:
    return _state(call, number, "close")


@router.post("/cases/{number}/reopen", response_model=None)
def reopen_case(call: Desk, number: str) -> Response:
    return _state(call, number, "reopen")


def _state(call: DeskCall, number: str, action: str) -> Response:
    case = load_case(call, number).case
    reason = _reason(call)
    if not reason:
        return _again(call, number, "state", call._("Give a reason."))
    desk = call.svc.cases()
    date = str(call.form.get("date") or "").strip()
    try:
        if action == "close":  # a date as the written record gives it, else now
            desk.close(call.actor, case.number, reason=reason, closed_at=maybe_moment(
                date or None, call.zone, name="date"))
        else:
            desk.reopen(call.actor, case.number, reason=reason)
    except Conflict:
        return _again(call, number, "state", call._("The case is already %(status)s.",
                                                    status=call._(case.status)), 409)
    except InvalidRequest as exc:
        return _again(call, number, "state", invalid_words(call, exc))
    return redirect(case_url(case.number) + "#facts")


@router.post("/cases/{number}/label", response_model=None)
def relabel_case(call: Desk, number: str) -> Response:
    case = load_case(call, number).case
    reason, label = _reason(call), call.form.get("sensitivity")
    if not reason or not isinstance(label, str) or not label:
        return _again(call, number, "label", call._("Choose a label and give a reason."))
    try:
        call.svc.cases().relabel(call.actor, case.number, sensitivity=label, reason=reason)
    except InvalidRequest as exc:
        return _again(call, number, "label", invalid_words(call, exc))
    return redirect(case_url(case.number) + "#facts")


@router.post("/cases/{number}/stages", response_model=None)
def record_stage(call: Desk, number: str) -> Response:
    case = load_case(call, number).case
    form: dict[str, Any] = call.form
    stage, start, end = (str(form.get(k) or "").strip() for k in ("stage", "start", "end"))
    note = str(form.get("note") or "").strip()
    if not stage or not start or not end:
        return _again(call, number, "stage", call._("Choose a stage, its start and its end."))
    try:
        start_at = moment(start, call.zone, name="start")
        end_at = moment(end, call.zone, name="end")
        if end_at <= start_at:
            return _again(call, number, "stage", call._("The end must come after the start."))
        call.svc.cases().stage(call.actor, case.number, stage=stage, start_at=start_at,
                               end_at=end_at, note=note)
    except InvalidRequest as exc:
        if "value" in exc.details:
            return _again(call, number, "stage", call._("%(value)s is not a date and time.",
                                                        value=exc.details["value"]))
        return _again(call, number, "stage", invalid_words(call, exc))
    return redirect(case_url(case.number) + "#stages")


@router.post("/cases/{number}/applicability", response_model=None)
def decide_stage(call: Desk, number: str) -> Response:
    """A checklist stage marked (not) applicable (不适用), as `POST /coverage/stage`."""
    from records.applicability import ApplicabilityDesk

    case = load_case(call, number).case
    stage, reason = str(call.form.get("stage") or ""), _reason(call)
    if not stage or not reason:
        words = call._("Choose a stage and give a reason.")
        return _again(call, number, "applicability", words)
    svc = call.svc
    desk = ApplicabilityDesk(catalog=svc.catalog, gate=svc.gate(), cases=svc.settings.cases,
                             clock=svc.clock)
    try:
        desk.decide(call.actor, number=case.number, stage=stage,
                    applicable=call.form.get("applicable") == "yes", reason=reason)
    except InvalidRequest as exc:
        return _again(call, number, "applicability", invalid_words(call, exc))
    return redirect(case_url(case.number) + "#coverage")


def _may_attach(request: Request, number: str) -> None:
    """Before a byte of the upload is read (as the API does): the session's user must
    be allowed to attach to this case. The form's CSRF token is checked after parsing."""
    svc = request.app.state.services
    address = request.client.host if request.client else "local"
    probe = Call(address=address, method="GET", path=request.url.path, headers={})
    session = web_desk(request.app).session_of(request.cookies.get(COOKIE), probe)
    if session is None:
        raise NotLoggedIn(request.url.path)
    actor = svc.gate().by_name(session.user)
    try:
        svc.cases().visible_case(actor, number, P.CASE_ATTACH)
    except (Forbidden, NotFound):
        if actor.may(P.CASE_VIEW):
            say = words(pick(request)).gettext
            raise NotFound(say("There is no case %(number)s that you may see.",
                               number=number), case=number) from None
        raise


class _Spooled:
    """The spooled upload as the store's ``readinto`` source."""

    def __init__(self, upload: UploadFile) -> None:
        self.file = upload.file

    def readinto(self, buffer: memoryview, /) -> int:
        data = self.file.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@router.post("/cases/{number}/documents", response_model=None)
async def upload_document(request: Request, number: str) -> Response:
    _may_attach(request, number)
    call = await desk_call(request)
    case = load_case(call, number).case
    upload = call.form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename or not upload.size:
        return _again(call, number, "document", call._("Choose a file to upload."))
    description = str(call.form.get("description") or "").strip()
    size, name = upload.size, upload.filename
    try:
        await anyio.to_thread.run_sync(lambda: call.svc.cases().receive(
            call.actor, case.number, _Spooled(upload), filename=name, size=size,
            description=description))
    except (InvalidRequest, Conflict) as exc:
        return _again(call, number, "document", invalid_words(call, exc))
    finally:
        await upload.close()
    return redirect(case_url(case.number) + "#documents")


__all__ = ["router"]
