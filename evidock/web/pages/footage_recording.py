"""One recording: the player over its stored segments, its digests, the signed manifest's
verification, its links with their history, linking a range, and who opened it.

Everything comes from the desk methods the API routes call: ``Viewer.show``
(``GET /recordings/{id}``, audited ``recording.show``; a hidden or unknown recording is
its refusal or "not found"), the stored verification of ``GET /verify`` (run when the
section is asked for, since it re-reads every blob), and the audit log's events naming
the recording for readers with ``audit.view`` (as ``GET /audit/events``; others are told
so, as the API would refuse them). The player (static/footage.js) plays the rendition's
segments as stored, each through the API's ``/recordings/{id}/segments/{i}`` (Range,
``recording.play``, audited per request), switching to the next at its end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from evidock.service.routes.operations import verify_recording
from evidock.service.routes.recordings import viewer
from evidock.service.station_ops import require_recording
from evidock.web.base import PAGE_SIZE, Desk, DeskCall, render
from evidock.web.pages.footage import KINDS, clock
from records.auditdesk import AuditDesk
from records.desk_audit import EventFilter, events
from records.permissions import P
from records.viewing import RecordingDetail, RenditionView

router = APIRouter(include_in_schema=False)
API = "/api/v1"


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


@dataclass(frozen=True, slots=True)
class PlayerSegment:
    """One segment as the shared player (templates/footage/_player.html) shows it."""

    index: int
    name: str
    start_us: int
    end_us: int
    src: str  # the API's audited Range route for it


def player_data(segs: Sequence[PlayerSegment]) -> str:
    """The segments the player plays, as JSON for a data- attribute (no inline script)."""
    return json.dumps([{"index": g.index, "start": g.start_us / 1e6, "end": g.end_us / 1e6,
                        "src": g.src} for g in segs])


def _station_segments(recording_id: str,
                      rendition: RenditionView | None) -> list[PlayerSegment]:
    if rendition is None:
        return []
    return [PlayerSegment(index=g.index, name=g.name, start_us=g.start_us, end_us=g.end_us,
                          src=f"{API}/recordings/{recording_id}/segments/{g.index}"
                              f"?rendition={rendition.id}") for g in rendition.segments]


def _playable(detail: RecordingDetail) -> RenditionView | None:
    okay = [r for r in detail.renditions if r.status == "ok" and r.segments]
    return okay[-1] if okay else None


def _links(call: DeskCall, detail: RecordingDetail) -> list[dict[str, Any]]:
    out = []
    for link, number in reversed(detail.links):  # newest first
        out.append({"link": link, "number": number, "from": clock(link.start_us or 0),
                    "to": clock(link.end_us) if link.end_us is not None else "",
                    "whole": link.start_us is None and link.end_us is None})
    del call
    return out


def recording_page(call: DeskCall, recording_id: str, *, status: int = 200,
                   problem: str = "", form: dict[str, str] | None = None,
                   unlink_problem: tuple[int, str] | None = None) -> HTMLResponse:
    """The page (also re-shown with a form's message after a refused post)."""
    detail = viewer(call.svc).show(call.actor, recording_id)  # refuses and audits
    rendition = _playable(detail)
    blob = call.svc.catalog.blob(detail.recording.blake3)
    params = call.request.query_params
    start, stop = _seconds(params.get("from")), _seconds(params.get("to"))
    length = rendition.segments[-1].end_us if rendition else None
    play = _station_segments(recording_id, rendition)
    return render(call, "footage/recording.html", status=status, d=detail,
                  rec=detail.recording, kind=call._(KINDS.get(detail.recording.kind,
                                                              detail.recording.kind)),
                  sha256=blob.sha256 if blob else "", rendition=rendition,
                  play=play, segments=player_data(play),
                  start=start, stop=stop, length=clock(length), links=_links(call, detail),
                  may_link=call.actor.may(P.CASE_LINK), may_play=call.actor.may(
                      P.RECORDING_PLAY), stages=call.svc.settings.cases.stages,
                  problem=problem, form=form or {}, unlink_problem=unlink_problem,
                  may_audit=call.actor.may(P.AUDIT_VIEW), clock=clock)


@router.get("/footage/{recording_id}", response_class=HTMLResponse)
def recording(call: Desk, recording_id: str) -> HTMLResponse:
    return recording_page(call, recording_id)


@router.get("/footage/{recording_id}/verify", response_class=HTMLResponse)
def verify(call: Desk, recording_id: str) -> HTMLResponse:
    """The stored verification (``GET /verify``'s own function: blobs, signed manifest,
    every digest; an audited read). htmx fetches it into the page; without script it is
    a page of its own."""
    report = verify_recording(recording_id, call.actor, call.svc)
    return render(call, "footage/verify.html", recording_id=recording_id, report=report)


@router.get("/footage/{recording_id}/history", response_class=HTMLResponse)
def history(call: Desk, recording_id: str, before: int | None = None) -> HTMLResponse:
    """Audit events naming the recording, newest first, a page at a time: the audit
    log's own reading (needs ``audit.view``, hides what names hidden records)."""
    rec = call.svc.catalog.recording(recording_id)  # none: "not found"
    # hidden: refused and audited; seen: the audit read below is the one event
    require_recording(call.svc, call.actor, P.RECORDING_VIEW, rec.id)
    desk = AuditDesk(gate=call.svc.gate(), audit=call.svc.audit(), store=call.svc.store,
                     keys=call.svc.keys, clock=call.svc.clock)
    page = events(desk, call.actor, EventFilter(subject=f"recording:{recording_id}",
                                                before=before, limit=PAGE_SIZE))
    return render(call, "footage/history.html", recording_id=recording_id, page=page)


__all__ = ["API", "PlayerSegment", "player_data", "recording_page", "router"]
