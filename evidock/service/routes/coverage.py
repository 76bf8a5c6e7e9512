"""Coverage of the record (legal review)."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING

from fastapi import APIRouter, Response

from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.recordings import Body
from integrity.errors import InvalidRequest

if TYPE_CHECKING:
    from records.applicability import ApplicabilityDesk

router = APIRouter(tags=["coverage"])

#: The station's time zone, for clients that show the report's (UTC) times locally.
ZONE_HEADER = "X-Evidock-Zone"


def _since(text: str | None, zone: tzinfo) -> datetime | None:
    """ISO date or time; without a zone it is read in the station's camera time zone."""
    if text is None:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--since {text!r} is not an ISO 8601 date or time",
                             since=text) from None
    return when if when.utcoffset() is not None else when.replace(tzinfo=zone)


@router.get("/coverage")
def coverage(*, actor: ActorDep, svc: ServicesDep, response: Response,
             case: str | None = None, unit: str | None = None, since: str | None = None,
             ) -> dict[str, object]:
    """Which required stages of which cases have footage (音像记录事项清单): one case
    (refused if hidden from you) or the cases you may see, the rest counted hidden.
    ``complete`` false is the finding a legal review gates on."""
    from records.coverage_load import CoverageDesk

    desk = CoverageDesk(catalog=svc.catalog, gate=svc.gate(), settings=svc.settings.coverage,
                        clock=svc.clock)
    station = svc.settings.station
    result = desk.run(actor, number=case, unit=unit, since=_since(since, station.local_zone))
    response.headers[ZONE_HEADER] = station.local_zone_name
    return result.to_json()


class StageIn(Body):
    case: str
    stage: str
    applicable: bool
    reason: str


@router.post("/coverage/stage")
def decide_stage(body: StageIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Mark a checklist stage (not) applicable to a case (不适用), with a reason: a clerk
    of the case's unit or a legal reviewer; appended, audited, the newest decision wins."""
    desk = _applicability(svc)
    return desk.decide(actor, number=body.case, stage=body.stage, applicable=body.applicable,
                       reason=body.reason).to_json()


@router.get("/coverage/stage")
def stage_history(actor: ActorDep, svc: ServicesDep, case: str) -> dict[str, object]:
    """Every applicability decision of a case, oldest first (a read, audited)."""
    found = _applicability(svc).history(actor, number=case)
    return {"case": case, "decisions": [d.to_json() for d in found]}


def _applicability(svc: ServicesDep) -> ApplicabilityDesk:
    from records.applicability import ApplicabilityDesk

    return ApplicabilityDesk(catalog=svc.catalog, gate=svc.gate(), cases=svc.settings.cases,
                             clock=svc.clock)


__all__ = ["ZONE_HEADER", "router"]
