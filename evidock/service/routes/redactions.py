"""Redactions for publication (技术处理后公开): request, edit, render, view, decide.

Ids are uuids in the path; times are microseconds on the recording's timeline (the CLI
reads "0:12" and seconds). Every authorisation, refusal and read is the desk's
(records/redactions.py), audited there. The rendered file streams from the store with
its digests as headers; its viewing is recorded before a byte leaves.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from evidock.service.blobs import open_blob, range_headers, send
from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.recordings import Body
from integrity.redaction import AudioRange, Box, Plan
from records.redactionbook import RedactionView
from records.redactions import HandBox

router = APIRouter(tags=["redactions"])


class BoxIn(Body):
    box: tuple[int, int, int, int]  # x, y, w, h in source pixels
    range_us: tuple[int, int]


class AudioIn(Body):
    kind: str  # mute | tone
    range_us: tuple[int, int]


class RequestIn(Body):
    recording: str
    start_us: int
    end_us: int
    reason: str
    style: str = "blur"
    faces: bool = True
    boxes: list[BoxIn] = []
    audio: list[AudioIn] = []


class EditIn(Body):
    boxes: list[BoxIn] = []
    remove: list[str] = []
    audio: list[AudioIn] = []
    style: str | None = None


class DecideIn(Body):
    reason: str


def _boxes(items: list[BoxIn]) -> list[HandBox]:
    return [(Box(*b.box), *b.range_us) for b in items]


def _audio(items: list[AudioIn]) -> list[AudioRange]:
    return [AudioRange(a.kind, *a.range_us) for a in items]


def _answer(view: RedactionView, plan: Plan | None = None) -> dict[str, Any]:
    return {"redaction": view.to_json(plan)}


@router.post("/redactions")
def request(body: RequestIn, *, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """A new redaction of a recording range (redaction.request); faces are detected
    unless ``faces`` is false."""
    desk = svc.redactions()
    view = desk.request(actor, body.recording, start_us=body.start_us, end_us=body.end_us,
                        reason=body.reason, style=body.style, faces=body.faces,
                        boxes=_boxes(body.boxes), audio=_audio(body.audio))
    return _answer(*desk.show(actor, view.id))


@router.get("/redactions")
def list_redactions(*, actor: ActorDep, svc: ServicesDep,
                    status: str | None = None) -> dict[str, Any]:
    """The redactions of recordings the caller may see, oldest first."""
    return {"redactions": [v.to_json() for v in svc.redactions().list(actor, status=status)]}


@router.get("/redactions/{redaction_id}")
def show(redaction_id: str, *, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """One redaction: its steps, the plan in force, the render and status."""
    return _answer(*svc.redactions().show(actor, redaction_id))


@router.post("/redactions/{redaction_id}/edit")
def edit(redaction_id: str, body: EditIn, *, actor: ActorDep,
         svc: ServicesDep) -> dict[str, Any]:
    desk = svc.redactions()
    desk.edit(actor, redaction_id, add_boxes=_boxes(body.boxes), remove=body.remove,
              audio=_audio(body.audio), style=body.style)
    return _answer(*desk.show(actor, redaction_id))


@router.post("/redactions/{redaction_id}/render")
def render(redaction_id: str, *, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Render the plan in force (ffmpeg; minutes for a long range). With a job queue
    the request is checked here and a worker renders it (``redaction`` job; the answer
    has ``queued``)."""
    desk = svc.redactions()
    if svc.job_queue is not None:
        desk.check_render(actor, redaction_id)
        queued = svc.job_queue.defer("redaction", {"redaction_id": redaction_id,
                                                   "actor": actor.name})
        return {**_answer(*desk.show(actor, redaction_id)), "queued": queued.to_json()}
    desk.render(actor, redaction_id)
    return _answer(*desk.show(actor, redaction_id))


@router.get("/redactions/{redaction_id}/file", response_model=None)
def view(redaction_id: str, *, actor: ActorDep, svc: ServicesDep) -> Response:
    """The rendered file of the plan in force; recorded as this caller's viewing."""
    blob = svc.redactions().view(actor, redaction_id)
    fh = open_blob(blob)
    return StreamingResponse(send(fh, blob, 0, blob.size), media_type="video/mp4",
                             headers=range_headers(blob, 0, blob.size))


@router.post("/redactions/{redaction_id}/approve")
def approve(redaction_id: str, body: DecideIn, *, actor: ActorDep,
            svc: ServicesDep) -> dict[str, Any]:
    desk = svc.redactions()
    desk.approve(actor, redaction_id, reason=body.reason)
    return _answer(*desk.show(actor, redaction_id))


@router.post("/redactions/{redaction_id}/reject")
def reject(redaction_id: str, body: DecideIn, *, actor: ActorDep,
           svc: ServicesDep) -> dict[str, Any]:
    desk = svc.redactions()
    desk.reject(actor, redaction_id, reason=body.reason)
    return _answer(*desk.show(actor, redaction_id))


__all__ = ["router"]
