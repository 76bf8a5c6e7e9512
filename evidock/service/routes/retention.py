"""Retention: plan, schedule, list pending, approve and run deletions.

Every endpoint acts at the service's clock ("now" is never the client's: a run refuses a
future now, and a client's clock is not the station's) and calls the executor as
`evidock retention …` did in-process; the executor checks permissions and audits.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from evidock.service.deps import ActorDep, ServicesDep

router = APIRouter(tags=["retention"])


class ApproveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    recording: str


@router.get("/retention/plan")
def plan(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """What the rules decide for every live recording now (an audited read)."""
    return svc.retention().plan(actor, svc.clock()).to_dict()


@router.post("/retention/schedule")
def schedule(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Schedule each due deletion; cancel scheduled ones the plan now keeps."""
    return svc.retention().schedule(actor, svc.clock()).to_dict()


@router.get("/retention/pending")
def pending(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Scheduled deletions with their due dates and approvals."""
    now = svc.clock()
    views = svc.retention().pending(now, actor=actor)
    return {"now": now.isoformat(), "pending": [v.to_json(now) for v in views]}


@router.post("/retention/approve")
def approve(body: ApproveRequest, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Approve a scheduled deletion (a user other than the one who scheduled it)."""
    return svc.retention().approve(actor, body.recording).to_json()


@router.get("/retention/dry-run")
def dry_run(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """What a run would delete now (nothing changes; an audited read)."""
    return svc.retention().run(actor, svc.clock(), dry_run=True).to_dict()


@router.post("/retention/run")
def run(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Run the due, approved deletions. A blocked item is in the report
    (``counts.blocked``), not an error: the client exits 1 on it."""
    return svc.retention().run(actor, svc.clock()).to_dict()
