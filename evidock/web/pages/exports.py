"""Exports on the desk: the lists (the user's requests, the approvals queue), the
request form and a request's page.

Every page calls the export desk the API calls (``svc.exports()``, see
:mod:`evidock.service.routes.exports`), so the two-person rule, units and labels are
the service's; lists page in the database (:mod:`records.desk_exports`). Deciding,
running and downloading are in :mod:`evidock.web.pages.exports_actions`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import (
    PAGE_SIZE,
    PREFIX,
    Desk,
    DeskCall,
    no_store,
    position,
    redirect,
    render,
)
from integrity.errors import EvidockError, Forbidden, HiddenItem, NotFound
from records.desk_exports import VIEWS, DeskExports
from records.exportbook import STATUSES, RequestView
from records.permissions import P

router = APIRouter(include_in_schema=False)
#: The request form's fields, as the API's request body names them (less the flags).
FIELDS = ("case", "recording", "start", "end", "purpose", "recipient", "reason",
          "redaction")


def _(text: str) -> str:
    """Marks an English text for the zh catalog; it is translated where it is shown."""
    return text


#: Words of a request's status, its steps, the lists and the notes after an action.
STATUS = {"pending": _("waiting for approval"), "approved": _("approved"),
          "rejected": _("rejected"), "expired": _("approval expired"),
          "running": _("being made"), "used": _("package made"),
          "discarded": _("discarded")}
STEP = {"approved": _("approved"), "rejected": _("rejected"), "running": _("run started"),
        "released": _("run failed; approval given back"), "used": _("package made"),
        "discarded": _("discarded")}
VIEW_WORDS = {"mine": _("My requests"), "all": _("All requests I may see"),
              "queue": _("Approvals queue")}
DONE = {"requested": _("Request sent: it now waits for another person's decision."),
        "approved": _("Approved. The requester can now make the package."),
        "rejected": _("Rejected. The request is closed."),
        "run": _("The package was made. Download it below."),
        "queued": _("A worker makes the package. Reload this page to download it.")}
WORDS = {"status": STATUS, "step": STEP, "view": VIEW_WORDS, "done": DONE}


def seconds(us: int) -> str:
    """Microseconds as plain seconds for a URL (``10``, ``12.5``)."""
    return f"{us / 1e6:.3f}".rstrip("0").rstrip(".")


def _page_number(value: str) -> int:
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else 1


@router.get("/exports", response_class=HTMLResponse)
def exports_list(call: Desk, view: str = "", status: str = "", page: str = "1") -> Response:
    """The user's requests, every request they may see, or (approvers) the queue."""
    approver = call.actor.may(P.EXPORT_APPROVE)
    chosen = view if view in VIEWS else ("queue" if approver else "mine")
    number = _page_number(page)
    found = DeskExports(catalog=call.svc.catalog, gate=call.svc.gate()).page(
        call.actor, view=chosen, status=status if status in STATUSES else None,
        offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    return no_store(render(call, "exports/list.html", labels=WORDS, rows=found.requests,
                           more=found.more,
                           view=chosen, wanted=status if status in STATUSES else "",
                           page=number, approver=approver, statuses=STATUSES,
                           names=_names(call),
                           views=[v for v in VIEWS if v != "queue" or approver]))


def _prefill(request: Request) -> dict[str, str]:
    q = request.query_params
    return {"case": q.get("case", ""), "recording": q.get("recording", ""),
            "start": q.get("from", ""), "end": q.get("to", ""), "purpose": "",
            "recipient": "", "reason": "", "redaction": ""}


def _form_page(call: DeskCall, values: dict[str, Any], *, problem: str = "",
               status: int = 200) -> HTMLResponse:
    settings = call.svc.settings.exports
    return render(call, "exports/new.html", status=status, values=values,
                  problem=problem, purposes=settings.purposes,
                  public=settings.public_purposes)


@router.get("/exports/new", response_class=HTMLResponse)
def new_form(call: Desk, request: Request) -> HTMLResponse:
    return _form_page(call, {**_prefill(request), "exact": False, "originals": False})


def _text(form: dict[str, Any], name: str) -> str:
    value = form.get(name, "")
    return value.strip() if isinstance(value, str) else ""


def _problem(call: DeskCall, v: dict[str, Any]) -> str:
    """A clear message in the user's language for what the form lacks (the desk checks
    everything again)."""
    if bool(v["case"]) == bool(v["recording"]) and not v["redaction"]:
        return call._("Name either a case number or a recording, not both.")
    if v["purpose"] not in call.svc.settings.exports.purposes:
        return call._("Choose a purpose from the list.")
    if not v["recipient"]:
        return call._("Name the recipient.")
    if v["purpose"] in call.svc.settings.exports.public_purposes and not v["redaction"]:
        return call._("%(purpose)s makes footage public: it may take only an approved redacted derivative. Give the redaction id.", purpose=v["purpose"])  # noqa: E501
    if v["case"] and (v["start"] or v["end"]):
        return call._("A case request takes the case's linked ranges; leave From and To empty.")
    return ""


def _refusal(call: DeskCall, v: dict[str, Any], exc: EvidockError) -> str:
    """The desk's refusal as the form's message. A case or recording the user may not
    see reads exactly like one that does not exist (its refusal is still audited)."""
    hidden = isinstance(exc, Forbidden) and not isinstance(exc, HiddenItem) \
        and call.actor.may(P.EXPORT_REQUEST)
    missing = isinstance(exc, NotFound) and exc.message.startswith(("no case ",
                                                                   "no recording "))
    if missing or hidden:
        if v["case"]:
            return call._("There is no case %(number)s that you may export.",
                          number=v["case"])
        return call._("There is no recording %(id)s that you may export.",
                      id=v["recording"] or v["redaction"])
    if isinstance(exc, HiddenItem):
        return call._("Some footage of this request is linked to cases you may not see, so you may not export it (%(code)s).", code=exc.code)  # noqa: E501
    return call._("The request was not accepted (%(code)s): %(detail)s", code=exc.code,
                  detail=exc.message)


@router.post("/exports/new", response_class=HTMLResponse)
def new_request(call: Desk) -> Response:
    v: dict[str, Any] = {name: _text(call.form, name) for name in FIELDS}
    v["exact"], v["originals"] = bool(call.form.get("exact")), bool(call.form.get("originals"))
    problem = _problem(call, v)
    if problem:
        return _form_page(call, v, problem=problem, status=400)
    try:
        made = call.svc.exports().request(
            call.actor, case=v["case"] or None, recording=v["recording"] or None,
            start=v["start"] or None, end=v["end"] or None, purpose=v["purpose"],
            recipient=v["recipient"], reason=v["reason"], exact=v["exact"],
            originals=v["originals"], redaction=v["redaction"] or None)
    except EvidockError as exc:
        return _form_page(call, v, problem=_refusal(call, v, exc), status=400)
    return redirect(f"{PREFIX}/exports/{made.id}?done=requested")


@router.get("/exports/station-key.pem")
def station_key(call: Desk) -> Response:
    """The station's current public key (what ``evidock keys export-public`` prints), for
    a recipient's offline ``evidock verify --key``; anyone logged in, as in the API."""
    key = call.svc.keys.keyring().current_key
    return Response(key.to_pem(), media_type="application/x-pem-file", headers={
        "Content-Disposition": f'attachment; filename="{key_file(key.key_id)}"'})


def key_file(key_id: str) -> str:
    """The public key's file name (a key id holds ':', which file names avoid)."""
    return f"evidock-{key_id.replace(':', '-')}.pem"


def request_page(call: DeskCall, view: RequestView, *, problem: str = "",
                 status: int = 200, done: str = "") -> Response:
    """A request's page (also re-shown by a decision form with its message)."""
    ring = call.svc.keys.keyring()
    return no_store(render(
        call, "exports/show.html", status=status, r=view, problem=problem,
        done=done if done in DONE else "", labels=WORDS,
        clock=position, seconds=seconds, key_id=ring.current, key_file=key_file(ring.current),
        profile=ring.profile,
        approval=view.approval, names=_names(call)))


def _names(call: DeskCall) -> dict[str, str]:
    """User name → the name people know them by (the agency's config)."""
    return {u.name: u.display or u.name for u in call.svc.settings.access.users}


@router.get("/exports/{request_id}", response_class=HTMLResponse)
def show(call: Desk, request_id: str, done: str = "") -> Response:
    view = call.svc.exports().show(call.actor, request_id)
    return request_page(call, view, done=done)


__all__ = ["request_page", "router", "seconds"]
