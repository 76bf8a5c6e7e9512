"""Recordings: list/find, one in full, a segment of its rendition (HTTP Range), marks.

Included in the cases router (:mod:`evidock.service.routes.cases`). What a reader may
see is decided by the dossier and the viewer, as for `case find` and `case show`.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict

from evidock.service.blobs import serve
from evidock.service.deps import ActorDep, ServicesDep
from evidock.wiring import Services
from integrity.errors import InvalidRequest
from records.viewing import Viewer

router = APIRouter(tags=["recordings"])


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarkIn(Body):
    mark: str
    reason: str
    remove: bool = False


class CategoryIn(Body):
    category: str
    reason: str


def moment(text: str, zone: tzinfo, *, name: str) -> datetime:
    """An ISO date or time; a bare date is its midnight, a naive time is the station's
    local time (as the written case record gives it)."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidRequest(f"{name}: cannot read {text!r} as an ISO 8601 date or time",
                             value=text) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=zone)


def maybe_moment(text: str | None, zone: tzinfo, *, name: str) -> datetime | None:
    return None if text is None else moment(text, zone, name=name)


def viewer(svc: Services) -> Viewer:
    return Viewer(catalog=svc.catalog, store=svc.store, gate=svc.gate())


@router.get("/recordings")
def find(*, actor: ActorDep, svc: ServicesDep, case: str | None = None,
         officer: str | None = None, device: str | None = None, unit: str | None = None,
         stage: str | None = None, since: str | None = None, until: str | None = None,
         ) -> dict[str, object]:
    """Recordings you may see matching every given filter (none: all of them); times
    on the camera's start, else the ingest time. Others are counted hidden (audited)."""
    zone = svc.settings.station.local_zone
    found = svc.dossier().find(actor, case=case, officer=officer, device=device, unit=unit,
                               stage=stage, since=maybe_moment(since, zone, name="--since"),
                               until=maybe_moment(until, zone, name="--until"))
    return {"recordings": [f.to_json() for f in found]}


@router.get("/recordings/{recording_id}")
def show(recording_id: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """One recording: facts, marks, links (with history), renditions and segments."""
    return viewer(svc).show(actor, recording_id).to_json()


@router.get("/recordings/{recording_id}/segments/{index}", response_model=None)
def segment(recording_id: str, index: int, *, actor: ActorDep, svc: ServicesDep,
            rendition: str | None = None,
            range_: Annotated[str | None, Header(alias="Range")] = None,
            ) -> Response:
    """One stored segment of the recording's rendition (newest ok one unless named),
    whole or one byte range; needs recording.play, and the read is audited."""
    return serve(lambda span: viewer(svc).play(actor, recording_id, index,
                                               rendition_id=rendition, span=span), range_)


@router.post("/recordings/{recording_id}/marks")
def mark(recording_id: str, body: MarkIn, actor: ActorDep, svc: ServicesDep,
         ) -> dict[str, object]:
    """Put a mark on a recording (or take it off with ``remove``)."""
    return svc.cases().mark(actor, recording_id, mark=body.mark, reason=body.reason,
                            remove=body.remove).to_json()


@router.post("/recordings/{recording_id}/category")
def categorize(recording_id: str, body: CategoryIn, actor: ActorDep, svc: ServicesDep,
               ) -> dict[str, object]:
    """Set a recording's retention category (the latest one counts)."""
    return svc.cases().categorize(actor, recording_id, category=body.category,
                                  reason=body.reason).to_json()


__all__ = ["Body", "maybe_moment", "moment", "router", "viewer"]
