"""What a recording's page posts: link a range of it to a case, remove a link.

The same desk methods as ``POST /cases/links`` and ``POST /cases/links/{id}/unlink``
(``CaseDesk.link``/``unlink``: the gate, the vocabulary, the audit event bound to the
row). Times are typed as m:ss or h:mm:ss (or filled from the player) and read by the
API's own ``parse_offset``. A refused or invalid form re-shows the page with the
message next to the form; nothing is changed in place (an unlink is a row of its own).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from evidock.web.base import PREFIX, Desk, DeskCall, redirect
from evidock.web.pages.footage_recording import recording_page
from integrity.errors import Conflict, InvalidRequest, NotFound
from records.package import parse_offset

router = APIRouter(include_in_schema=False)
# A refused form is shown again with 200 and its message: a 4xx would be a console error
# in the browser for what is only a form to correct.
LINK_FIELDS = ("case", "stage", "start", "end", "reason")


def _text(call: DeskCall, name: str) -> str:
    value = call.form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _offset(call: DeskCall, text: str, recording_id: str) -> int | None:
    if not text:
        return None
    camera_start = call.svc.catalog.recording(recording_id).camera_start
    return parse_offset(text, camera_start)


def _link_problem(call: DeskCall, values: dict[str, str]) -> str:
    if not values["case"]:
        return call._("Enter the case number.")
    if not values["stage"]:
        return call._("Choose a stage.")
    if not values["reason"]:
        return call._("Give a reason.")
    return ""


@router.post("/footage/{recording_id}/link", response_model=None)
def link(call: Desk, recording_id: str) -> Response:
    values = {k: _text(call, k) for k in LINK_FIELDS}
    problem = _link_problem(call, values)
    if not problem:
        try:
            start = _offset(call, values["start"], recording_id)
            end = _offset(call, values["end"], recording_id)
        except NotFound:  # parse_offset's answer to a time it cannot read
            problem = call._("A time could not be read: use m:ss or h:mm:ss.")
        else:
            problem = _range_problem(call, start, end) or _do_link(
                call, recording_id, values, start, end)
    if problem:
        return recording_page(call, recording_id, problem=problem, form=values)
    return redirect(f"{PREFIX}/footage/{recording_id}#links")


def _range_problem(call: DeskCall, start: int | None, end: int | None) -> str:
    if start is not None and end is not None and end <= start:
        return call._("The end of the range must come after its start.")
    return ""


def _do_link(call: DeskCall, recording_id: str, values: dict[str, str],
             start: int | None, end: int | None) -> str:
    try:
        call.svc.cases().link(call.actor, values["case"], recording_id,
                              stage=values["stage"], reason=values["reason"],
                              start_us=start, end_us=end)
    except NotFound as exc:
        if "case" in exc.details:
            return call._("There is no case %(case)s.", case=values["case"])
        raise
    except (InvalidRequest, Conflict) as exc:
        return call._("The link was not made: %(why)s", why=exc.message)
    return ""


@router.post("/footage/{recording_id}/unlink/{link_id}", response_model=None)
def unlink(call: Desk, recording_id: str, link_id: int) -> Response:
    reason = _text(call, "reason")
    if not reason:
        return recording_page(call, recording_id,
                              unlink_problem=(link_id, call._("Give a reason.")))
    try:
        call.svc.cases().unlink(call.actor, link_id, reason=reason)
    except (InvalidRequest, Conflict) as exc:
        return recording_page(call, recording_id, unlink_problem=(
            link_id, call._("The link was not removed: %(why)s", why=exc.message)))
    return redirect(f"{PREFIX}/footage/{recording_id}#links")


__all__ = ["router"]
