"""Witnessing of audit logs: the center's side (stations hand in heads) and the
station's (push its head to the center, list the countersignatures it kept).

Each endpoint calls :class:`records.witnessdesk.WitnessDesk`; the gate decides
(``witness.submit`` for a station's account at the center, ``witness.push`` and
``audit.view`` at a station).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from evidock.service.blobs import serve
from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["witness"])

StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class HeadIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The station's signed tree head, as `evidock audit head --json` prints it.
    head: dict[str, Any]
    #: RFC 6962 consistency proof from the last head witnessed to this one (null for the
    #: first head); at most 64 nodes, as a log of 2^63 events needs no more.
    proof: dict[str, Any] | None = Field(default=None)


@router.post("/witness/stations/{station_id}/heads")
def submit(station_id: StationId, body: HeadIn, actor: ActorDep,
           svc: ServicesDep) -> dict[str, Any]:
    """Judge a station's head against the last one witnessed; countersign it if it
    extends that log (409 E_LOG_FORK, kept as a conflict, if it does not)."""
    path = (body.proof or {}).get("path")
    if isinstance(path, list) and len(path) > 64:
        body = HeadIn(head=body.head, proof=None)  # judged as a missing proof
    return svc.witness().submit(actor, station_id, body.head, body.proof)


@router.get("/witness/stations/{station_id}/latest")
def latest(station_id: StationId, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """The last head countersigned for the station (``cosigned`` null if none)."""
    return svc.witness().latest(actor, station_id)


@router.get("/witness/status")
def status(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Center: per witnessed station, what is mirrored and witnessed, and since when."""
    return svc.witness().status(actor)


@router.get("/witness/conflicts")
def conflicts(actor: ActorDep, svc: ServicesDep,
              station: Annotated[str | None, Query(max_length=64)] = None,
              ) -> dict[str, Any]:
    """Every head that did not extend the log witnessed before, with the evidence."""
    return svc.witness().conflicts(actor, station)


@router.post("/witness/push")
def push(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Station: send the center the events it lacks, then have the log's head witnessed
    and keep the countersignature."""
    events = svc.feed().push(actor)
    return {**svc.witness().push(actor), "events": events}


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Audit events as the station stores them, in order (`AuditLog.export`).
    events: list[dict[str, Any]] = Field(max_length=1000)


@router.get("/feed/stations/{station_id}/position")
def position(station_id: StationId, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """The next event seq the center wants from the station."""
    return svc.feed().position(actor, station_id)


@router.post("/feed/stations/{station_id}/events")
def events(station_id: StationId, body: EventsIn, actor: ActorDep,
           svc: ServicesDep) -> dict[str, Any]:
    """Check and keep the station's next events; stops before one whose blobs are not
    in the object store yet (``waiting``)."""
    return svc.feed().receive(actor, station_id, body.events)


@router.get("/witness/received")
def received(actor: ActorDep, svc: ServicesDep,
             limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> dict[str, Any]:
    """Station: the countersignatures kept, newest first."""
    return svc.witness().received(actor, limit=limit)


@router.get("/center/cases")
def central_cases(actor: ActorDep, svc: ServicesDep,
                  number: Annotated[str | None, Query(max_length=200)] = None,
                  station: Annotated[str | None, Query(max_length=64)] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Center: the cases of every station this user may see."""
    return svc.central().cases(actor, number=number, station=station, limit=limit)


class SweepIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sample: int = Field(default=100, ge=1, le=100_000)
    station: str | None = Field(default=None, max_length=64)


@router.post("/center/sweep")
def central_sweep(body: SweepIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Center: check a random sample of the stations' blobs in the object store."""
    return svc.remote_fixity().sweep(actor, sample=body.sample, station=body.station)


class RecordingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    officer: str | None = Field(default=None, max_length=64)
    station: str | None = Field(default=None, max_length=64)
    case: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=100, ge=1, le=1000)


@router.get("/center/recordings")
def central_recordings(params: Annotated[RecordingsIn, Query()], actor: ActorDep,
                       svc: ServicesDep) -> dict[str, Any]:
    """Center: the recordings of every station this user may see (each is as secret as
    the strictest case it is linked to)."""
    return svc.central().recordings(actor, officer=params.officer, station=params.station,
                                    case_number=params.case, limit=params.limit)


@router.get("/center/recordings/{station_id}/{recording_id}")
def central_recording(station_id: StationId, recording_id: str, actor: ActorDep,
                      svc: ServicesDep) -> dict[str, Any]:
    """Center: one station's recording, its linked cases and renditions (as the station
    would refuse it: recording.view and every linked case's unit and label)."""
    return svc.central().recording(actor, station_id, recording_id)


@router.get("/center/recordings/{station_id}/{recording_id}/segments")
def central_segments(station_id: StationId, recording_id: str, actor: ActorDep,
                     svc: ServicesDep) -> dict[str, Any]:
    """Center: the segments of the recording's newest ok rendition, as its signed
    manifest (read back and proven) names them; needs recording.play, audited."""
    return svc.central_player().segments(actor, station_id, recording_id)


@router.get("/center/recordings/{station_id}/{recording_id}/segments/{index}",
            response_model=None)
def central_segment(station_id: StationId, recording_id: str, index: int, *,
                    actor: ActorDep, svc: ServicesDep,
                    range_: Annotated[str | None, Header(alias="Range")] = None,
                    ) -> Response:
    """Center: one segment of a station's recording, read back from the object store and
    proven (BLAKE3 of the signed manifest's entry) before a byte is sent; whole or one
    byte range; needs recording.play, and the read is audited."""
    return serve(lambda span: svc.central_player().play(actor, station_id, recording_id,
                                                        index, span=span), range_)
