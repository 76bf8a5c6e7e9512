"""The center's area of the desk: every station's cases and recordings, and how each
station's log is witnessed.

Only at a center (a service with ``[[witness.stations]]``); elsewhere these pages answer
"not found" and the menu does not offer them. The lists call the desk methods the API's
``GET /center/cases`` and ``GET /center/recordings`` call
(:class:`records.centraldesk.CentralDesk`): the station's rules (``case.view`` with the
case's unit and label; ``recording.view`` with those of every case a recording is
actively linked to, one hidden case hiding it), each view audited as
``read.center.cases`` / ``read.center.recordings`` naming only what was shown. What is
hidden is neither listed nor counted. The witness panel is
:meth:`records.witnessdesk.WitnessDesk.latest` and ``conflicts`` (``audit.view``, every
read audited), fetched into the cases page by htmx and a page of its own without
script. Each recording links its page at the center (``pages/center_recording.py``):
the station desk's player fed from the center's proven segment route.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import PREFIX, Desk, DeskCall, no_store, redirect, render
from evidock.web.pages.cases import SENSITIVITY_WORDS
from integrity.errors import NotFound
from records.permissions import P

router = APIRouter(include_in_schema=False)
#: Rows a list shows (the newest first): the desk method's own limit, not a page of a
#: longer count, so nothing hidden is counted; a full list asks for a narrower search.
LIMIT = 100
#: The longest text a filter takes (the API's own limits).
NUMBER_MAX, OFFICER_MAX = 200, 64
STATUS_WORDS = {"ingested": "ingested", "flagged": "flagged"}


def witnessed(call: DeskCall) -> list[str]:
    """The stations this center witnesses; "not found" where it witnesses none."""
    stations = [s.id for s in call.svc.settings.witness.stations]
    if not stations:
        raise NotFound(call._("This service is not a center: it witnesses no station."))
    return stations


def tabs(call: DeskCall) -> list[tuple[str, str]]:
    """The area's pages this user may open (each page checks its own permission)."""
    may = call.actor.may
    pages = [("/center/cases", "Cases of every station", may(P.CASE_VIEW)),
             ("/center/recordings", "Recordings of every station", may(P.RECORDING_VIEW)),
             ("/center/witness", "Witnessed logs", may(P.AUDIT_VIEW)),
             ("/center/exports", "Exports of every station",  # pages/center_exports.py
              any(may(p) for p in (P.EXPORT_REQUEST, P.EXPORT_APPROVE, P.EXPORT_RUN))),
             ("/center/retention", "Holds and deletions",  # pages/center_retention.py
              any(may(p) for p in (P.HOLD_PLACE, P.HOLD_RELEASE, P.RETENTION_PLAN,
                                   P.RETENTION_APPROVE)))]
    return [(PREFIX + path, title) for path, title, shown in pages if shown]


def _text(value: str, most: int) -> str | None:
    text = value.strip()[:most]
    return text or None


def _station(call: DeskCall, stations: list[str], value: str) -> tuple[str | None, str]:
    """The station asked for (None: every one) and the problem, if it is none of them."""
    if not value:
        return None, ""
    if value not in stations:
        return None, call._("Choose one of the stations this center witnesses.")
    return value, ""


@router.get("/center", response_model=None)
def center(call: Desk) -> Response:
    """The area's first page: the cases, or the recordings for who may not list cases."""
    witnessed(call)
    shown = tabs(call)
    return redirect(shown[0][0] if shown else f"{PREFIX}/center/cases")


@router.get("/center/cases", response_class=HTMLResponse)
def cases(call: Desk, number: str = "", station: str = "") -> Response:
    stations = witnessed(call)
    values = {"number": (_text(number, NUMBER_MAX) or ""), "station": station}
    chosen, problem = _station(call, stations, station)
    rows: list[dict[str, Any]] = []
    if not problem:
        rows = call.svc.central().cases(call.actor, number=values["number"] or None,
                                        station=chosen, limit=LIMIT)["cases"]
    return no_store(render(call, "center/cases.html", tabs=tabs(call), stations=stations,
                           values=values, problem=problem, rows=rows, limit=LIMIT,
                           label_words=SENSITIVITY_WORDS,
                           panel=call.actor.may(P.AUDIT_VIEW)))


@router.get("/center/recordings", response_class=HTMLResponse)
def recordings(call: Desk, officer: str = "", station: str = "",
               case: str = "") -> Response:
    stations = witnessed(call)
    values = {"officer": _text(officer, OFFICER_MAX) or "", "station": station,
              "case": _text(case, NUMBER_MAX) or ""}
    chosen, problem = _station(call, stations, station)
    rows: list[dict[str, Any]] = []
    if not problem:
        rows = call.svc.central().recordings(
            call.actor, officer=values["officer"] or None, station=chosen,
            case_number=values["case"] or None, limit=LIMIT)["recordings"]
    return no_store(render(call, "center/recordings.html", tabs=tabs(call),
                           stations=stations, values=values, problem=problem,
                           rows=rows, limit=LIMIT, status_words=STATUS_WORDS,
                           size=human_size, case_link=case_link))


def human_size(size: int | None) -> str:
    """A file's size as people read it (decimal units, as the station page's MB)."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} B"
    for unit, scale in (("kB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if size < scale * 1000 or unit == "GB":
            return f"{size / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def case_link(station: str, number: str) -> str:
    """The center's list of that case's recordings at its station."""
    return f"{PREFIX}/center/recordings?" + urlencode({"station": station, "case": number})


@router.get("/center/witness", response_class=HTMLResponse)
def witness(call: Desk) -> Response:
    """Per witnessed station: the last head countersigned and the conflicts found. The
    rule is WitnessDesk's (``audit.view``; a refusal is audited and shown)."""
    stations = witnessed(call)
    desk = call.svc.witness()
    found = desk.conflicts(call.actor)["conflicts"]
    rows = []
    for station in stations:
        cosigned = desk.latest(call.actor, station)["cosigned"]
        head = None if cosigned is None else cosigned["head"]
        rows.append({"station": station, "size": None if head is None else head["size"],
                     "root": None if head is None else head["root"],
                     "signed_at": None if head is None else head["time"],
                     "witnessed_at": None if cosigned is None else cosigned["witnessed_at"],
                     "conflicts": sum(1 for c in found if c["station_id"] == station)})
    return no_store(render(call, "center/witness.html", tabs=tabs(call), rows=rows))


__all__ = ["LIMIT", "STATUS_WORDS", "case_link", "human_size", "router", "tabs",
           "witnessed"]
