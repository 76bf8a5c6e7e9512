"""The station page: every dock bay live, and the cameras and officers overdue for
offload (the 24 h rule).

The bays come from the very function the API answers ``GET /dock/status`` with
(:mod:`evidock.service.routes.operations`), shown to anyone logged in as there; the
overdue report is ``GET /dock/overdue``'s answer paginated in the database
(:mod:`records.desk_station`, same rule, same ``equipment.view`` check, same audited
read), so the page sees what ``evidock dock status|overdue`` print.
The bays come from the dock daemon's status file (``docks.status.StatusBoard``); an
offload asked of the service (``POST /offloads``) reports no progress there, so it
shows up only in the overdue report once it has finished.

The bay table is also a fragment (``/station/bays``) that htmx fetches every 2 s and
swaps in place; without script the page has a refresh link.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from evidock.service.routes.operations import dock_status
from evidock.web.base import PAGE_SIZE, Desk, DeskCall, render
from records.desk_station import overdue_page
from records.permissions import P

router = APIRouter(include_in_schema=False)

#: What a bay's state, an offload's outcome and an overdue row's kind read as (English
#: msgids; the zh catalog has each, tested).
STATES = {"idle": "Idle", "identifying": "Identifying camera", "queued": "Waiting for a slot",
          "offloading": "Offloading", "verifying": "Verifying", "processing": "Making renditions",
          "done": "Done", "failed": "Failed"}
OUTCOMES = {"completed": "Completed", "findings": "Completed with findings",
            "interrupted": "Interrupted", "failed": "Failed"}
KINDS = {"camera": "Camera", "officer": "Officer"}


@router.get("/station", response_class=HTMLResponse)
def station(call: Desk, o: int = 0) -> HTMLResponse:
    """``o``: the page of the overdue report."""
    overdue: dict[str, Any] | None = None
    if call.actor.may(P.EQUIPMENT_VIEW):  # the check itself refuses (and audits) else
        overdue = _overdue(call, max(o, 0))
    return _fresh(render(call, "station/station.html", dock=_dock(call), overdue=overdue))


def _overdue(call: DeskCall, number: int) -> dict[str, Any]:
    """One page of ``GET /dock/overdue``'s answer (records/desk_station: in the database)."""
    window = timedelta(hours=call.svc.settings.dock.overdue_window_h)
    page = overdue_page(call.svc.catalog, call.svc.gate(), call.actor, now=call.svc.clock(),
                        window=window, offset=number * PAGE_SIZE, limit=PAGE_SIZE)
    rows = []
    for row in page.rows:
        outcome = row.get("last_outcome")
        rows.append({**row, "kind_word": call._(KINDS.get(row["kind"], row["kind"])),
                     "outcome_word": call._(OUTCOMES.get(outcome, outcome)) if outcome else ""})
    return {"overdue": rows, "window_h": page.window_h, "total": page.total,
            "number": number, "pages": max((page.total + PAGE_SIZE - 1) // PAGE_SIZE, 1)}


@router.get("/station/bays", response_class=HTMLResponse)
def bays(call: Desk) -> HTMLResponse:
    """The bay table alone (htmx polls it)."""
    return _fresh(render(call, "station/bays.html", dock=_dock(call)))


def _fresh(page: HTMLResponse) -> HTMLResponse:
    page.headers["Cache-Control"] = "no-store"  # a bay's state is never read from a cache
    return page


def _dock(call: DeskCall) -> dict[str, Any]:
    doc = dock_status(call.actor, call.svc)
    rows = [_bay(call, b) for _key, b in sorted(doc.get("bays", {}).items(), key=_bay_order)]
    return {"bays": rows, "running": bool(doc.get("running")),
            "updated_at": doc.get("updated_at"), "unregistered": doc.get("unregistered", []),
            "ignored": int(doc.get("ignored") or 0)}


def _bay_order(item: tuple[str, Any]) -> tuple[int, str]:
    key = item[0]
    return (int(key), key) if key.isdigit() else (1 << 30, key)


def _bay(call: DeskCall, b: dict[str, Any]) -> dict[str, Any]:
    """A bay as people read it: numbers rounded, the state a known word."""
    state = str(b.get("state")) if b.get("state") in STATES else "idle"
    outcome = b.get("outcome")
    done, total = int(b.get("bytes_done") or 0), int(b.get("bytes_total") or 0)
    eta = b.get("eta_s")
    return {**b, "state": state, "state_word": call._(STATES[state]),
            "outcome_word": call._(OUTCOMES.get(str(outcome), str(outcome))) if outcome else "",
            "mb_done": f"{done / 1e6:.1f}", "mb_total": f"{total / 1e6:.1f}",
            "percent": int(done * 100 / total) if total else (100 if state == "done" else 0),
            "rate": f"{float(b.get('throughput_bps') or 0.0) / 1e6:.1f}",
            "eta": None if eta is None else _eta(float(eta)),
            "active": state in ("identifying", "queued", "offloading", "verifying",
                                "processing")}


def _eta(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}:{secs:02d}" if minutes else f"0:{secs:02d}"


__all__ = ["router"]
