"""Review decisions (法制审核) on a case: record one, list them.

The case is named by number (or id) in the body or a query parameter, never in the
path (numbers are free Unicode). Refusals, decisions and reads are audited by the desk.
"""

from __future__ import annotations

from fastapi import APIRouter

from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.recordings import Body
from records.reviews import ReviewDesk

router = APIRouter(tags=["reviews"])


class DecideIn(Body):
    case: str
    decision: str  # 同意 | 暂不同意 | 不同意
    reason: str


def _desk(svc: ServicesDep) -> ReviewDesk:
    return ReviewDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(),
                      clock=svc.clock)


@router.post("/reviews")
def decide(body: DecideIn, *, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Record a decision; refused to whoever lacks case.review, may not see the case, or
    worked on it as its clerk (created it, linked footage, stages, documents)."""
    review = _desk(svc).decide(actor, body.case, decision=body.decision, reason=body.reason)
    return {"case": body.case, "review": review.to_json()}


@router.get("/reviews")
def list_reviews(case: str, *, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Every decision on a case, oldest first; the last is in force."""
    found, reviews = _desk(svc).list(actor, case)
    return {"case": found.number, "case_id": found.id,
            "current": reviews[-1].to_json() if reviews else None,
            "reviews": [r.to_json() for r in reviews]}


__all__ = ["router"]
