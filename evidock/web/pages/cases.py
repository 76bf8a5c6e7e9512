"""Cases on the desk: the list (paginated by the database), a new case, a case's page.

Each page calls the desk method the API route calls (records/cases.py, records/dossier.py,
records/coverage_load.py, records/exports.py) with the logged-in user, except the list,
which reads one page at a time through :mod:`records.desk_cases` under the same rule.
A case the reader may not see answers exactly as a case that does not exist (the
refusal itself is audited by the gate).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import (
    PAGE_SIZE,
    PREFIX,
    Desk,
    DeskCall,
    local_time,
    position,
    redirect,
    render,
)
from evidock.web.pages.cases_svg import STATUS_WORDS, timeline
from integrity.errors import Conflict, EvidockError, Forbidden, InvalidRequest, NotFound
from records.casebook import LinkView
from records.coverage_load import CoverageDesk
from records.desk_cases import CaseFilter, CaseList
from records.dossier import CaseDossier
from records.permissions import P

router = APIRouter(include_in_schema=False)
SENSITIVITY_WORDS = {"none": "not classified"}
#: A refused case number (the words test cannot read a message split over lines).
NUMBER_WRONG = "%(number)s is not a case number as the agency writes them (for example 城东〔2026〕12号)."  # noqa: E501
MODE_WORDS = {"video": "video footage", "audio": "audio footage", "photo": "photos",
              "any": "any kind"}
EXPORT_WORDS = {s: f"export {s}" for s in ("pending", "approved", "rejected", "expired",
                                             "running", "used", "discarded")}


def case_url(number: str) -> str:
    from urllib.parse import quote

    return f"{PREFIX}/cases/{quote(number, safe='')}"


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _choice(value: str | None, allowed: tuple[str, ...] | list[str]) -> str | None:
    return value if value and (not allowed or value in allowed) else None


@router.get("/cases", response_class=HTMLResponse)
def case_list(call: Desk, *, q: str = "", unit: str = "", status: str = "", type: str = "",  # noqa: A002
              page: int = 1) -> HTMLResponse:
    settings = call.svc.settings.cases
    want = CaseFilter(text=q.strip()[:100], unit=unit or None,
                      status=_choice(status, ("open", "closed")),
                      case_type=_choice(type, list(settings.types)))
    page = max(page, 1)
    found = CaseList(catalog=call.svc.catalog, gate=call.svc.gate()).page(
        call.actor, want, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-found.total // PAGE_SIZE))
    query = {"q": want.text, "unit": unit, "status": want.status or "",
             "type": want.case_type or ""}
    return render(call, "cases/list.html", found=found, want=want, page=page, pages=pages,
                  query=query, units=_units(call), types=settings.types,
                  label_words=SENSITIVITY_WORDS, case_url=case_url)


def _units(call: DeskCall) -> list[str]:
    """The units offered: the user's own, else the agency's list (empty: free text)."""
    return sorted(call.actor.units) or list(call.svc.settings.cases.units)


def _new_form(call: DeskCall, *, status: int = 200, problem: str = "",
              values: dict[str, str] | None = None) -> HTMLResponse:
    from config.access import SENSITIVITIES

    labels = [x for x in SENSITIVITIES if x == "none" or x in call.actor.clearances]
    return render(call, "cases/new.html", status=status, problem=problem,
                  values=values or {}, units=_units(call),
                  types=call.svc.settings.cases.types, labels=labels,
                  label_words=SENSITIVITY_WORDS)


@router.get("/cases/new", response_class=HTMLResponse)
def new_case(call: Desk) -> HTMLResponse:
    return _new_form(call)


@router.post("/cases/new", response_model=None)
def create_case(call: Desk) -> Response:
    values = {k: _text(call.form.get(k)) for k in ("number", "type", "unit", "title",
                                                     "sensitivity")}
    if not values["number"] or not values["type"] or not values["unit"]:
        return _new_form(call, status=400, values=values, problem=call._(
            "Enter the case number, its type and its unit."))
    try:
        case = call.svc.cases().create(call.actor, number=values["number"],
                                       case_type=values["type"], unit=values["unit"],
                                       title=values["title"],
                                       sensitivity=values["sensitivity"] or "none")
    except Conflict:
        return _new_form(call, status=409, values=values, problem=call._(
            "A case numbered %(number)s already exists.", number=values["number"]))
    except InvalidRequest as exc:
        return _new_form(call, status=400, values=values, problem=invalid_words(call, exc))
    return redirect(case_url(case.number))


def invalid_words(call: DeskCall, exc: EvidockError) -> str:
    """What a desk's refusal of a form means, in the user's language."""
    details = exc.details
    if "latest" in details:
        return call._("The closing date cannot be later than today.")
    if "earliest" in details:
        return call._("The case cannot have closed before %(at)s (%(why)s).",
                      at=local_time(details["earliest"], call.zone), why=details["because"])
    if "number" in details:
        return call._(NUMBER_WRONG, number=details["number"])
    for field, text in (("case_type", "Choose one of the agency's case types."),
                        ("unit", "Choose one of the agency's units."),
                        ("sensitivity", "Choose a sensitivity label."),
                        ("stage", "Choose one of the agency's stages."),
                        ("filename", "The file could not be stored: %(why)s")):
        if field in details:
            return call._(text, why=str(exc)) if "%(why)s" in text else call._(text)
    return call._("The request was not carried out") + f": {exc.code} {exc}"


def load_case(call: DeskCall, number: str) -> CaseDossier:
    """The case's dossier; a hidden case answers as a missing one (refusal audited)."""
    try:
        return call.svc.dossier().show(call.actor, number)
    except Forbidden:
        if not call.actor.may(P.CASE_VIEW):
            raise
        raise NotFound(call._("There is no case %(number)s that you may see.",
                              number=number), case=number) from None
    except NotFound:
        raise NotFound(call._("There is no case %(number)s that you may see.",
                              number=number), case=number) from None


def _coverage(call: DeskCall, number: str) -> Any:
    if not call.actor.may(P.COVERAGE_VIEW):
        return None
    svc = call.svc
    desk = CoverageDesk(catalog=svc.catalog, gate=svc.gate(), settings=svc.settings.coverage,
                        clock=svc.clock)
    return desk.run(call.actor, number=number).cases[0]


def _exports(call: DeskCall, number: str) -> list[Any] | None:
    if not any(call.actor.may(p) for p in (P.EXPORT_REQUEST, P.EXPORT_APPROVE, P.EXPORT_RUN)):
        return None
    return list(call.svc.exports().list(call.actor, case=number))


def span(link: LinkView) -> tuple[str, str]:
    """A link's range as offsets into the recording (empty: its start / end)."""
    return position(link.start_us), position(link.end_us)


def case_page(call: DeskCall, number: str, *, status: int = 200,
              problem: tuple[str, str] | None = None) -> HTMLResponse:
    """The case's page; ``problem`` = (form, message) re-shows a refused form."""
    dossier = load_case(call, number)
    case = dossier.case
    finding = _coverage(call, case.number)
    svg = None if finding is None else timeline(finding, say=call._, zone=call.zone)
    recordings = {r.id: r for r in dossier.recordings}
    settings = call.svc.settings.cases
    from config.access import SENSITIVITIES

    return render(call, "cases/case.html", status=status, d=dossier, case=case,
                  url=case_url(case.number), finding=finding, svg=svg,
                  exports=_exports(call, case.number), recordings=recordings,
                  problem=problem or ("", ""), stages=settings.stages,
                  labels=[x for x in SENSITIVITIES if x == "none" or x in call.actor.clearances],
                  label_words=SENSITIVITY_WORDS, status_words=STATUS_WORDS, span=span,
                  mode_words=MODE_WORDS, export_words=EXPORT_WORDS,
                  may=call.actor.may, P=P)


@router.get("/cases/{number}", response_class=HTMLResponse)
def show_case(call: Desk, number: str) -> HTMLResponse:
    return case_page(call, number)


__all__ = ["case_page", "case_url", "invalid_words", "load_case", "router"]
