"""Statistics of enforcement recording (统计分析): counts the database makes, grouped."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["statistics"])


@router.get("/statistics")
def statistics(*, actor: ActorDep, svc: ServicesDep,
               by: Annotated[list[str] | None, Query()] = None,
               start: Annotated[str | None, Query(alias="from")] = None,
               end: Annotated[str | None, Query(alias="to")] = None,
               coverage: bool = False) -> dict[str, object]:
    """Recordings, footage hours, late offloads and links, grouped ``by`` any of unit,
    officer, stage and month or year (comma-separated or repeated), over recordings made
    in [from, to): a year, month, date or ISO time (no zone: the station's; a year, month
    or date as ``to`` includes it). Only what you may see is counted; recordings linked
    to a case hidden from you are counted once in ``hidden``. Times are ISO 8601 in the
    station's zone. ``coverage``: also the checklist stages of the cases by status
    (covered / missing / gaps / 不适用), judged by the coverage module per case."""
    from records.statistics import StatsQuery, dimensions, parse_bound
    from records.statistics_sql import StatisticsDesk

    station = svc.settings.station
    zone = station.local_zone
    query = StatsQuery(by=dimensions(by or []), zone=zone, zone_name=station.local_zone_name,
                       start=parse_bound(start, zone, end=False),
                       end=parse_bound(end, zone, end=True),
                       offload_deadline_h=svc.settings.coverage.offload_deadline_h)
    desk = StatisticsDesk(catalog=svc.catalog, gate=svc.gate(), clock=svc.clock,
                          coverage=svc.settings.coverage)
    return desk.run(actor, query, with_coverage=coverage).to_json()


__all__ = ["router"]
