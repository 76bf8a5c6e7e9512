"""Exports from the center on the desk: the list (全局导出), the request form a center
recording's page carries, and a request's page.

Every page calls :class:`records.centralexports.CentralExportDesk`, the desk the API's
``/center/exports`` routes call (:mod:`evidock.service.routes.center_exports`): the
two-person rule, one run per approval and the units and labels of every case the
recording is linked to are its rules, every read and refusal its audit events. The list
is ``CentralExportDesk.list`` (only requests whose recording the reader may see; the
others are neither listed nor counted). Deciding, running, downloading and verifying
are in :mod:`evidock.web.pages.center_exports_actions`. The station's export pages are
the model (:mod:`evidock.web.pages.exports`); their words and template pieces are shared.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import PREFIX, Desk, DeskCall, no_store, position, redirect, render
from evidock.web.pages.center import tabs, witnessed
from evidock.web.pages.exports import WORDS, key_file, seconds, station_key
from integrity.errors import EvidockError, Forbidden, NotFound
from records.exportbook import STATUSES, RequestView
from records.permissions import P

router = APIRouter(include_in_schema=False)
#: The form's fields, as the API's request body names them.
FIELDS = ("station", "recording", "start", "end", "purpose", "recipient", "reason")
#: The longest text a field takes (the API's own limits; more is cut, the desk checks).
FIELD_MAX = 200


def request_purposes(call: DeskCall) -> list[str]:
    """The purposes a center request may name: a public one needs a redacted
    derivative, and redactions are made at the station (the desk refuses them)."""
    settings = call.svc.settings.exports
    return [p for p in settings.purposes if p not in settings.public_purposes]


def page_of(request_id: str) -> str:
    return f"{PREFIX}/center/exports/{request_id}"


def recording_page(station: str, recording_id: str, **query: str) -> str:
    """The center's page of that recording (``from``/``to``: the range to play)."""
    tail = f"?{urlencode(query)}" if query else ""
    return (f"{PREFIX}/center/recordings/{quote(station, safe='')}/"
            f"{quote(recording_id, safe='')}{tail}")


def _names(call: DeskCall) -> dict[str, str]:
    return {u.name: u.display or u.name for u in call.svc.settings.access.users}


@router.get("/center/exports", response_class=HTMLResponse)
def exports_list(call: Desk, status: str = "") -> Response:
    """Every center request the reader may see, newest first (the desk's rule)."""
    witnessed(call)
    wanted = status if status in STATUSES else ""
    rows = call.svc.central_exports().list(call.actor, status=wanted or None)
    return no_store(render(call, "center/exports.html", tabs=tabs(call),
                           rows=list(reversed(rows)), labels=WORDS, statuses=STATUSES,
                           wanted=wanted, names=_names(call)))


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip()[:FIELD_MAX] if isinstance(value, str) else ""


def _form_page(call: DeskCall, values: dict[str, Any], *, problem: str = "",
               status: int = 200) -> Response:
    return no_store(render(call, "center/export_new.html", status=status, tabs=tabs(call),
                           v=values, problem=problem, purposes=request_purposes(call),
                           back=recording_page(values["station"], values["recording"])))


@router.get("/center/exports/new", response_class=HTMLResponse)
def new_form(call: Desk, station: str = "", recording: str = "") -> Response:
    """The request form on a page of its own (the recording page carries the same)."""
    witnessed(call)
    values = {name: "" for name in FIELDS} | {"station": station[:64],
                                              "recording": recording[:FIELD_MAX]}
    return _form_page(call, values)


def _problem(call: DeskCall, v: dict[str, Any]) -> str:
    """What the form lacks, in the user's language (the desk checks everything again)."""
    if not v["start"] or not v["end"]:
        return call._("Give the range to export: From and To.")
    if v["purpose"] not in request_purposes(call):
        return call._("Choose a purpose from the list.")
    if not v["recipient"]:
        return call._("Name the recipient.")
    return ""


def _refusal(call: DeskCall, v: dict[str, Any], exc: EvidockError) -> str:
    """The desk's refusal as the form's message. A recording the user may not see reads
    like one that does not exist (the refusal is still audited)."""
    if isinstance(exc, Forbidden) and call.actor.may(P.EXPORT_REQUEST):
        return call._("There is no recording %(id)s that you may export.",
                      id=v["recording"])
    return call._("The request was not accepted (%(code)s): %(detail)s", code=exc.code,
                  detail=exc.message)


@router.post("/center/exports/new", response_class=HTMLResponse)
def new_request(call: Desk) -> Response:
    stations = witnessed(call)
    v: dict[str, Any] = {name: _text(call.form, name) for name in FIELDS}
    v["originals"] = bool(call.form.get("originals"))
    if v["station"] not in stations:
        raise NotFound(call._("Choose one of the stations this center witnesses."),
                       station=v["station"])
    problem = _problem(call, v)
    if problem:
        return _form_page(call, v, problem=problem, status=400)
    try:
        made = call.svc.central_exports().request(
            call.actor, station=v["station"], recording=v["recording"], start=v["start"],
            end=v["end"], purpose=v["purpose"], recipient=v["recipient"],
            reason=v["reason"], originals=v["originals"])
    except EvidockError as exc:
        return _form_page(call, v, problem=_refusal(call, v, exc), status=400)
    return redirect(f"{page_of(made.id)}?done=requested")


@router.get("/center/exports/center-key.pem")
def center_key(call: Desk) -> Response:
    """The center's public key (it signs clip.json): ``--center-key`` of a recipient's
    offline ``evidock verify``; anyone logged in, as the station's key on its desk."""
    witnessed(call)
    return station_key(call)


def request_page(call: DeskCall, view: RequestView, *, problem: str = "",
                 status: int = 200, done: str = "") -> Response:
    """A request's page (also re-shown by a decision form with its message)."""
    assert view.station_id is not None and view.recording_id is not None
    center = call.svc.keys.keyring()
    station = call.svc.central_player().keyring_for(view.station_id)
    item = view.items[0]
    return no_store(render(
        call, "center/export.html", status=status, tabs=tabs(call), r=view,
        problem=problem, done=done if done in WORDS["done"] else "", labels=WORDS,
        clock=position, approval=view.approval, names=_names(call),
        base=page_of(view.id),
        watch=recording_page(view.station_id, view.recording_id,
                             **{"from": seconds(item.start_us), "to": seconds(item.end_us)}),
        recording=recording_page(view.station_id, view.recording_id),
        center_key=key_file(center.current), center_id=center.current,
        station_key=key_file(station.current), station_key_id=station.current))


@router.get("/center/exports/{request_id}", response_class=HTMLResponse)
def show(call: Desk, request_id: str, done: str = "") -> Response:
    witnessed(call)
    return request_page(call, call.svc.central_exports().show(call.actor, request_id),
                        done=done)


__all__ = ["page_of", "request_page", "request_purposes", "router"]
