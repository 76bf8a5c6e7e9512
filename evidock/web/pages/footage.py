"""Footage: the search (one page of matches from the database) and each recording's still.

The search asks :func:`records.desk_footage.find_page`, the paginated twin of the
``GET /recordings`` route's ``Dossier.find`` (same filters, same rule, same order, same
``case.find`` audit event); recordings the reader may not see are only counted, as the
CLI counts them. The still (``/footage/{id}/thumb.jpg``) is allowed exactly as viewing
the recording is (records/footage_thumbs.py) and answers a hidden or unknown recording
with the same refusal or "not found" as its page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response

from evidock.service.routes.recordings import moment
from evidock.web.base import PAGE_SIZE, Desk, DeskCall, render
from evidock.web.base import position as clock
from integrity.errors import InvalidRequest, NotFound
from records.desk_footage import FootagePage, durations, find_page
from records.dossier import FindQuery
from records.footage_thumbs import Thumbnails

router = APIRouter(include_in_schema=False)
#: The still's place while a worker makes it (answered 202, never cached).
PENDING_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="320" height="180">'
               '<rect width="320" height="180" fill="#ddd"/></svg>')
#: The search form's fields, in the order the form shows them.
FIELDS = ("officer", "device", "unit", "stage", "case", "since", "until")
KINDS = {"video": "Video", "audio": "Audio", "photo": "Photo", "log": "Log",
         "other": "Other"}


@dataclass(frozen=True, slots=True)
class Search:
    """What the form asked (as typed) and the query it makes."""

    values: dict[str, str]
    query: FindQuery
    page: int


def _when(call: DeskCall, text: str, name: str) -> datetime | None:
    # A datetime-local input sends the station's wall clock without a zone: moment()
    # reads it in the station's zone, as the API reads --since/--until.
    return moment(text, call.zone, name=name) if text else None


def read_search(call: DeskCall) -> Search:
    """The form's values; InvalidRequest when a time cannot be read."""
    params = call.request.query_params
    values = {k: params.get(k, "").strip() for k in FIELDS}
    try:
        page = max(1, int(params.get("page", "1")))
    except ValueError:
        page = 1
    query = FindQuery(case=values["case"] or None, officer=values["officer"] or None,
                      device=values["device"] or None, unit=values["unit"] or None,
                      stage=values["stage"] or None,
                      since=_when(call, values["since"], "since"),
                      until=_when(call, values["until"], "until"))
    return Search(values=values, query=query, page=page)


def _problem(call: DeskCall, exc: InvalidRequest | NotFound) -> str:
    if isinstance(exc, NotFound):
        return call._("There is no case %(case)s.", case=exc.details.get("case", ""))
    if "since" in exc.details and "until" in exc.details:
        return call._("The end of the time window must come after its start.")
    return call._("A time could not be read; use the date and time fields.")


@router.get("/footage", response_class=HTMLResponse)
def search(call: Desk) -> HTMLResponse:
    problem, result, values, page = "", None, {k: "" for k in FIELDS}, 1
    try:
        asked = read_search(call)
        values, page = asked.values, asked.page
        result = find_page(call.svc.catalog, call.svc.gate(), call.actor, asked.query,
                           offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    except (InvalidRequest, NotFound) as exc:  # a refusal goes to the error page
        problem = _problem(call, exc)
    return render(call, "footage/search.html", values=values, problem=problem,
                  rows=_rows(call, result), result=result, page=page,
                  pages=_pages(result), links=_page_links(call, values, page, result),
                  stages=call.svc.settings.cases.stages, units=_units(call))


def _units(call: DeskCall) -> list[str]:
    return sorted(call.actor.units) or list(call.svc.settings.cases.units)


def _rows(call: DeskCall, result: FootagePage | None) -> list[dict[str, Any]]:
    if result is None:
        return []
    lengths = durations(call.svc.catalog, [f.recording.id for f in result.found])
    return [{"found": f, "duration": clock(lengths.get(f.recording.id)),
             "kind": call._(KINDS.get(f.recording.kind, f.recording.kind)),
             "links": [{"number": x.case_number, "stage": x.stage,
                        "range": _range(x.start_us, x.end_us)} for x in f.links]}
            for f in result.found]


def _range(start: int | None, end: int | None) -> str:
    if start is None and end is None:
        return ""
    return f"{clock(start or 0)} – {clock(end) if end is not None else '…'}"


def _pages(result: FootagePage | None) -> int:
    if result is None or result.shown == 0:
        return 1
    return (result.shown + PAGE_SIZE - 1) // PAGE_SIZE


def _page_links(call: DeskCall, values: dict[str, str], page: int,
                result: FootagePage | None) -> dict[str, str]:
    from urllib.parse import urlencode  # noqa: PLC0415

    kept = {k: v for k, v in values.items() if v}
    out: dict[str, str] = {}
    if page > 1:
        out["prev"] = "?" + urlencode({**kept, "page": page - 1})
    if result is not None and result.more:
        out["next"] = "?" + urlencode({**kept, "page": page + 1})
    del call
    return out


@router.get("/footage/{recording_id}/thumb.jpg", response_model=None)
def thumbnail(call: Desk, recording_id: str) -> Response:
    """The recording's still: who may view the recording, nobody else (audited). With a
    job queue a still not made yet is a ``thumbnails`` job and a placeholder now."""
    thumbs = Thumbnails(catalog=call.svc.catalog, store=call.svc.store,
                        gate=call.svc.gate())
    queue = call.svc.job_queue
    if queue is None:
        still = thumbs.still(call.actor, recording_id)
    elif (stored := thumbs.stored(call.actor, recording_id)) is not None:
        still = stored
    else:
        queue.defer("thumbnails", {"recording_id": recording_id, "actor": call.actor.name})
        return Response(PENDING_SVG, status_code=202, media_type="image/svg+xml",
                        headers={"Cache-Control": "no-store"})
    # The still is content-addressed and never changes, but it is evidence: kept in the
    # browser's private cache only, never in a shared one.
    return FileResponse(still.path, media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600",
                                 "ETag": f'"{still.blake3}"'})


__all__ = ["clock", "read_search", "router"]
