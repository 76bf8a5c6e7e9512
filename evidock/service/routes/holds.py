"""Legal holds: place, release (by another user), list.

Each endpoint calls the hold desk as `evidock hold …` did in-process; the desk checks
the permission, refuses a self-release and audits.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict

from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["holds"])


class HoldRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: str  # case | recording | officer (the desk refuses any other)
    target: str  # a case number or id, a recording id, a police number
    reason: str


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hold: str  # in the body, not the path: an id typed by hand may hold anything
    reason: str


@router.post("/holds")
def add_hold(body: HoldRequest, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Place a hold; the hold as `hold add --json` printed it."""
    return svc.holds().add(actor, scope=body.scope, target=body.target,
                           reason=body.reason).to_json()


@router.post("/holds/release")
def release_hold(body: ReleaseRequest, actor: ActorDep, svc: ServicesDep,
                 ) -> dict[str, object]:
    """Release a hold (a user other than the one who placed it)."""
    return svc.holds().release(actor, body.hold, reason=body.reason).to_json()


@router.get("/holds")
def list_holds(actor: ActorDep, svc: ServicesDep,
               all_holds: Annotated[bool, Query(alias="all")] = False) -> dict[str, object]:
    """Holds in force, or with ``all`` released ones too, that you may see; ``hidden``
    counts those on cases or recordings beyond your units or clearance."""
    views, hidden = svc.holds().listing(actor, active_only=not all_holds)
    return {"holds": [v.to_json() for v in views], "hidden": hidden}
