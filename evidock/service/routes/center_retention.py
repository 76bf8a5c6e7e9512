"""Retention decided at the center, carried out at stations.

Center: people place and release holds on a witnessed station's records and approve or
reject the deletions stations report (:mod:`retention.center_desk`,
:mod:`retention.center_deletions`); a station's account exchanges its open deletions for
its holds and decisions, only its own. Station: ``/retention/pull`` carries them out
(:mod:`retention.center_sync`). The desks check permissions, two people and audit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["center retention"])

StationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._-]{1,64}$")]


class CenterHoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    station: str = Field(max_length=64)
    scope: str  # case | recording | officer (the desk refuses any other)
    target: str = Field(max_length=200)  # a case number or id, a recording id, a police no.
    reason: str = Field(max_length=2000)


class CenterReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: str = Field(max_length=64)
    reason: str = Field(max_length=2000)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    station: str = Field(max_length=64)
    action: int = Field(ge=0)  # the station's id of the scheduled step
    verdict: str  # approved | rejected
    reason: str = Field(default="", max_length=2000)


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The station's open deletions (retention/center_sync.py report_of), at most 500.
    deletions: list[dict[str, Any]] = Field(default_factory=list, max_length=500)


@router.post("/center/holds")
def place(body: CenterHoldIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Center: hold a station's case, recording or officer's footage."""
    return svc.center_holds().place(actor, station=body.station, scope=body.scope,
                                    target=body.target, reason=body.reason)


@router.post("/center/holds/release")
def release(body: CenterReleaseIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Center: release a center hold (a user other than the one who placed it)."""
    return svc.center_holds().release(actor, body.hold, reason=body.reason)


@router.get("/center/holds")
def holds(actor: ActorDep, svc: ServicesDep,
          station: Annotated[str | None, Query(max_length=64)] = None,
          all_holds: Annotated[bool, Query(alias="all")] = False) -> dict[str, Any]:
    """Center: holds in force (or all) that you may see."""
    return svc.center_holds().listing(actor, station=station, active_only=not all_holds)


@router.get("/center/retention")
def pending(actor: ActorDep, svc: ServicesDep,
            station: Annotated[str | None, Query(max_length=64)] = None,
            all_reported: Annotated[bool, Query(alias="all")] = False) -> dict[str, Any]:
    """Center: deletions stations reported, not yet decided (or all)."""
    return svc.center_deletions().pending(actor, station=station,
                                          undecided=not all_reported)


@router.post("/center/retention/decide")
def decide(body: DecisionIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Center: approve or reject a reported deletion (not by whoever scheduled it)."""
    return svc.center_deletions().decide(actor, station=body.station, action_id=body.action,
                                         verdict=body.verdict, reason=body.reason)


@router.post("/center/stations/{station_id}/retention")
def exchange(station_id: StationId, body: ExchangeIn, actor: ActorDep,
             svc: ServicesDep) -> dict[str, Any]:
    """Center, the station's own account: report open deletions; its holds and the
    decisions on them."""
    return svc.center_deletions().exchange(actor, station_id, body.deletions)


@router.post("/retention/pull")
def pull(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Station: carry out the center's holds and decisions (one exchange)."""
    return svc.center_sync().pull(actor)
