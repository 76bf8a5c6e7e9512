"""One station's recording at the center: its facts from the central index, the cases it
is linked to, and the station desk's own player fed from the center's segment route.

The facts are :meth:`records.centraldesk.CentralDesk.recording` (``GET /center/
recordings/{station}/{recording}``: ``recording.view`` and the unit and label of every
linked case, refusals audited and shown on the error page as the station desk shows
them). The player's segment list is :meth:`records.centralplay.CentralPlayer.segments`
(``GET …/segments``, ``recording.play``): the signed manifest read back from the object
store and proven as every play proves it; each segment then streams from ``GET …/
segments/{i}`` (Range, proven before a byte is sent, ``read.center.play``). The player
markup and script are the station's (templates/footage/_player.html, static/footage.js);
``?from=&to=`` plays a range, as on the station's page. With ``export.request`` the page
carries the form to export a range from the center (:mod:`.center_exports`).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from evidock.web.base import Desk, DeskCall, no_store, render
from evidock.web.pages.cases import SENSITIVITY_WORDS
from evidock.web.pages.center import STATUS_WORDS, case_link, human_size, tabs, witnessed
from evidock.web.pages.center_exports import request_purposes
from evidock.web.pages.footage import clock
from evidock.web.pages.footage_recording import API, PlayerSegment, player_data
from integrity.errors import NotFound
from records.permissions import P, strictest

router = APIRouter(include_in_schema=False)


def _src(station: str, recording_id: str, index: int) -> str:
    return (f"{API}/center/recordings/{quote(station, safe='')}/"
            f"{quote(recording_id, safe='')}/segments/{index}")


def _seconds(text: str) -> float | None:
    """A place to play from, as the station's recording page reads it (else none)."""
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _playable(call: DeskCall, station: str,
              recording_id: str) -> tuple[dict[str, Any] | None, str]:
    """The proven manifest's segments, or why there is nothing to play (yet)."""
    if not call.actor.may(P.RECORDING_PLAY):
        return None, call._("You may not play footage.")
    try:
        listed = call.svc.central_player().segments(call.actor, station, recording_id)
    except NotFound as exc:  # no rendition indexed, or not uploaded yet
        return None, call._("This recording has nothing the center can play yet: %(why)s",
                            why=str(exc))
    if not listed["segments"]:
        return None, call._("This recording has no rendition to play yet.")
    return listed, ""


@router.get("/center/recordings/{station}/{recording_id}", response_class=HTMLResponse)
def recording(call: Desk, station: str, recording_id: str,
              start: Annotated[str, Query(alias="from")] = "",
              stop: Annotated[str, Query(alias="to")] = "") -> Response:
    """``from``/``to`` (seconds): the range to play, as an export's "watch this range"."""
    if station not in witnessed(call):
        raise NotFound(call._("Choose one of the stations this center witnesses."),
                       station=station)
    rec = call.svc.central().recording(call.actor, station, recording_id)  # refuses
    listed, unplayable = _playable(call, station, recording_id)
    play = [] if listed is None else [
        PlayerSegment(index=g["index"], name=g["name"], start_us=g["start_us"],
                      end_us=g["end_us"], src=_src(station, recording_id, g["index"]))
        for g in listed["segments"]]
    return no_store(render(
        call, "center/recording.html", tabs=tabs(call), rec=rec, listed=listed,
        unplayable=unplayable, play=play, segments=player_data(play),
        start=_seconds(start), stop=_seconds(stop),
        purposes=request_purposes(call),  # the export request form (center_exports.py)
        length=clock(play[-1].end_us) if play else "", clock=clock,
        sensitivity=strictest(c["sensitivity"] for c in rec["linked"]),
        label_words=SENSITIVITY_WORDS, status_words=STATUS_WORDS, size=human_size,
        case_link=case_link))


__all__ = ["router"]
