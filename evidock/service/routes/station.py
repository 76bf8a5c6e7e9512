"""Who am I, and is the service up."""

from __future__ import annotations

from fastapi import APIRouter

from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["station"])


@router.get("/health")
def health(svc: ServicesDep) -> dict[str, object]:
    """Liveness for systemd and load balancers: answers without identifying anyone."""
    return {"ok": True, "station": svc.settings.station.id}


@router.get("/whoami")
def whoami(actor: ActorDep) -> dict[str, object]:
    """The evidock user behind this request, with roles and permissions."""
    return {"user": actor.name, "display": actor.display, "roles": list(actor.roles),
            "units": sorted(actor.units) or "all",
            "clearances": ["none", *sorted(actor.clearances)],
            "permissions": sorted(p.value for p in actor.permissions)}
