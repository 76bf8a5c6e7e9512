"""The center's holds and deletion decisions (全局留存): holds placed here on a witnessed
station's case, recording or officer (list, place, release by another person), and the
deletions stations reported, approved or rejected here by a second person.

Every step calls the desks the API calls (``routes/center_retention.py``):
:class:`retention.center_desk.CenterHolds` and
:class:`retention.center_deletions.CenterDeletions`. They check the permissions and the
labels of what is held or deleted, refuse a self-release or a self-approval
(``E_SELF_APPROVAL``) and audit; a refusal is shown with its code as the station's page
shows it (``pages/retention.py``, whose template parts this page shares). Stations
carry the result out at their next pull.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.service.errors import status_of
from evidock.web.base import PREFIX, Desk, DeskCall, no_store, redirect, render
from evidock.web.pages.center import tabs, witnessed
from evidock.web.pages.retention import (
    RULE_WORDS,
    SCOPE_WORDS,
    form_field,
    reason_words,
    refusal,
)
from integrity.errors import EvidockError
from records.permissions import P
from retention.holds import SCOPES

router = APIRouter(include_in_schema=False)
HOME = f"{PREFIX}/center/retention"
#: The message shown after a successful post (``?done=``).
DONE = {"placed": "The hold was placed.", "released": "The hold was released.",
        "approved": "The deletion was approved.", "rejected": "The deletion was rejected."}
VERDICT_WORDS = {"approved": "Approved", "rejected": "Rejected"}


@dataclass(frozen=True, slots=True)
class View:
    """What the lists show: one station's or all, with released holds and decided
    deletions or without. A post carries it in hidden fields, so its answer shows it."""

    station: str = ""
    released: bool = False
    decided: bool = False

    def query(self, **changed: Any) -> str:
        """This view's query string, with ``changed`` fields (and ``done``)."""
        done = changed.pop("done", "")
        v = replace(self, **changed)
        values = {"station": v.station, "released": "1" if v.released else "",
                  "decided": "1" if v.decided else "", "done": done}
        return urlencode({k: val for k, val in values.items() if val})


@router.get("/center/retention", response_class=HTMLResponse)
def page(call: Desk, *, station: str = "", released: str = "", decided: str = "",
         done: str = "", scope: str = "", target: str = "") -> Response:
    """``station``: one station's only; ``released``/``decided``: the history too;
    ``scope``/``target``: a new hold's form filled in (the recording page's shortcut)."""
    stations = witnessed(call)
    view = View(station=station if station in stations else "", released=released == "1",
                decided=decided == "1")
    form = {"station": view.station, "scope": scope if scope in SCOPES else "recording",
            "target": target.strip()[:200], "reason": ""}
    flash = call._(DONE[done]) if done in DONE else ""
    return _page(call, view, form=form, flash=flash)


@router.post("/center/retention/holds", response_class=HTMLResponse)
def place(call: Desk) -> Response:
    form = {k: form_field(call, k) for k in ("station", "scope", "target", "reason")}
    view = _view(call)
    invalid = ""
    if form["station"] not in witnessed(call):
        invalid = call._("Choose one of the stations this center witnesses.")
    elif form["scope"] not in SCOPES:
        invalid = call._("Choose what the hold is on: a case, a recording or an officer.")
    elif not form["target"]:
        invalid = call._("Enter the case number, recording id or police number to hold.")
    elif not form["reason"]:
        invalid = call._("A hold needs a reason.")
    if invalid:  # re-shown with what was typed
        return _page(call, view, form=form, status=400, invalid=invalid)
    try:
        call.svc.center_holds().place(call.actor, station=form["station"],
                                      scope=form["scope"], target=form["target"],
                                      reason=form["reason"])
    except EvidockError as exc:
        return _page(call, view, form=form, problem=refusal(call, exc, "hold"),
                     status=status_of(exc))
    return redirect(_back(view, "placed", "holds"))


@router.post("/center/retention/holds/release", response_class=HTMLResponse)
def release(call: Desk) -> Response:
    hold, reason, view = form_field(call, "hold"), form_field(call, "reason"), _view(call)
    if not reason:
        return _page(call, view, status=400, releasing=hold,
                     invalid=call._("Releasing a hold needs a reason."))
    try:
        call.svc.center_holds().release(call.actor, hold, reason=reason)
    except EvidockError as exc:
        return _page(call, view, problem=refusal(call, exc, "hold"), status=status_of(exc))
    return redirect(_back(view, "released", "holds"))


@router.post("/center/retention/decide", response_class=HTMLResponse)
def decide(call: Desk) -> Response:
    station, verdict = form_field(call, "station"), form_field(call, "verdict")
    reason, view = form_field(call, "reason"), _view(call)
    action = form_field(call, "action")
    key = f"{station}/{action}"
    if not action.isdigit() or verdict not in VERDICT_WORDS:
        return _page(call, view, status=400, deciding=key,
                     invalid=call._("Choose a reported deletion and approve or reject it."))
    if verdict == "rejected" and not reason:
        return _page(call, view, status=400, deciding=key,
                     invalid=call._("Rejecting a deletion needs a reason."))
    try:
        call.svc.center_deletions().decide(call.actor, station=station,
                                           action_id=int(action), verdict=verdict,
                                           reason=reason)
    except EvidockError as exc:
        return _page(call, view, problem=refusal(call, exc, "deletion"),
                     status=status_of(exc))
    return redirect(_back(view, verdict, "pending"))


def _view(call: DeskCall) -> View:
    station = form_field(call, "view_station")
    return View(station=station if station in witnessed(call) else "",
                released=form_field(call, "view_released") == "1",
                decided=form_field(call, "view_decided") == "1")


def _back(view: View, done: str, anchor: str) -> str:
    return f"{HOME}?{view.query(done=done)}#{anchor}"


def _page(call: DeskCall, view: View, *, form: dict[str, str] | None = None,
          flash: str = "", status: int = 200, problem: dict[str, Any] | None = None,
          invalid: str = "", releasing: str = "", deciding: str = "") -> Response:
    actor, station = call.actor, view.station or None
    # CenterHolds.listing refuses (and audits) anyone without a hold or retention
    # permission; what the user may not see is counted, never named.
    held = call.svc.center_holds().listing(actor, station=station,
                                           active_only=not view.released)
    pending = None
    if actor.may(P.RETENTION_PLAN) or actor.may(P.RETENTION_APPROVE):
        pending = [_pending(call, p) for p in call.svc.center_deletions().pending(
            actor, station=station, undecided=not view.decided)["pending"]]
    return no_store(render(
        call, "center/retention.html", status=status, tabs=tabs(call),
        stations=witnessed(call), view=view,
        holds=[{**h, "scope_word": call._(SCOPE_WORDS.get(str(h["scope"]), h["scope"]))}
               for h in held["holds"]], hidden=held["hidden"], pending=pending,
        scopes=[(s, call._(SCOPE_WORDS[s])) for s in SCOPES],
        form=form or {"station": view.station, "scope": "recording", "target": "",
                      "reason": ""},
        may_place=actor.may(P.HOLD_PLACE), may_release=actor.may(P.HOLD_RELEASE),
        may_decide=actor.may(P.RETENTION_APPROVE), verdict_words=VERDICT_WORDS,
        flash=flash, problem=problem, invalid=invalid, releasing=releasing,
        deciding=deciding))


def _pending(call: DeskCall, p: dict[str, Any]) -> dict[str, Any]:
    rule = str(p["rule"])
    return {**p, "key": f"{p['station_id']}/{p['action_id']}",
            "rule_word": call._(RULE_WORDS[rule]) if rule in RULE_WORDS else rule,
            "reason_words": reason_words(call, str(p["reason"]))}


__all__ = ["DONE", "VERDICT_WORDS", "View", "router"]
