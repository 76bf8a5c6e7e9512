"""Equipment: cameras, who holds each from when, docking, the equipment-ratio report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.recordings import Body, moment
from evidock.wiring import Services
from records.equipment import CameraAssignment, EquipmentDesk

router = APIRouter(tags=["equipment"])


class AssignIn(Body):
    serial: str
    officer: str | None  # police number; null: back in the store, unassigned
    start: str  # ISO date or time; a date is its midnight, no zone: the station's
    reason: str = ""


def desk(svc: Services) -> EquipmentDesk:
    s = svc.settings
    return EquipmentDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                         access=s.access, units=s.cases.units,
                         min_ratio=s.equipment.min_ratio, clock=svc.clock)


def _rows(rows: list[CameraAssignment]) -> list[dict[str, object]]:
    return [{"id": r.id, "serial": r.device_serial, "officer": r.officer_id,
             "from": r.valid_from.isoformat(), "by": r.actor, "reason": r.reason,
             "at": r.at.isoformat()} for r in rows]


@router.post("/equipment/assign")
def assign(body: AssignIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """From ``start`` on, ``officer`` holds the camera; answers its whole history."""
    when = moment(body.start, svc.settings.station.local_zone, name="--from")
    rows = desk(svc).assign(actor, body.serial, officer=body.officer, valid_from=when,
                            reason=body.reason)
    return {"serial": body.serial, "assignments": _rows(rows)}


@router.get("/equipment/history")
def history(serial: str, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Every assignment of one camera, in the order recorded."""
    return {"serial": serial, "assignments": _rows(desk(svc).history(actor, serial))}


@router.get("/equipment/report")
def report(actor: ActorDep, svc: ServicesDep,
           idle_days: Annotated[int | None, Query(gt=0, le=3650)] = None,
           ) -> dict[str, object]:
    """Cameras (holder, last dock and offload, clock drift, idle) and each unit's
    officers, cameras and whether it is below ``[equipment] min_ratio``."""
    days = idle_days or svc.settings.equipment.idle_days
    return desk(svc).report(actor, idle_days=days).to_json()


__all__ = ["router"]
