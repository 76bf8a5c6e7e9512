"""Parties (当事人) of cases: add, correct, remove, list; find cases by a party.

The ID number and name travel only in request bodies, never in a URL (so no access
log or proxy ever holds them); the desk audits them only as keyed hashes.
"""

from __future__ import annotations

from fastapi import APIRouter

from evidock.service.deps import ActorDep, ServicesDep
from evidock.service.routes.recordings import Body
from evidock.wiring import Services
from records.parties import PartyDesk, PartyKeys, load_party_secret

router = APIRouter(tags=["parties"])


class PartyIn(Body):
    case: str
    name: str
    id_type: str
    id_number: str
    role: str
    reason: str = ""


class CorrectIn(PartyIn):
    party: int


class RemoveIn(Body):
    case: str
    party: int
    reason: str


class FindIn(Body):
    id_number: str | None = None
    name: str | None = None


def desk(svc: Services) -> PartyDesk:
    keys = PartyKeys(secret=load_party_secret(svc.settings.keys_dir))
    return PartyDesk(catalog=svc.catalog, gate=svc.gate(), audit=svc.audit(), keys=keys,
                     clock=svc.clock)


@router.post("/cases/parties")
def add(body: PartyIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Add a party to a case (needs party.edit on the case)."""
    return desk(svc).add(actor, body.case, name=body.name, id_type=body.id_type,
                         id_number=body.id_number, role=body.role,
                         reason=body.reason).to_json()


@router.post("/cases/parties/correct")
def correct(body: CorrectIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Correct a party: a new row replacing ``party``, with a reason."""
    return desk(svc).correct(actor, body.case, body.party, name=body.name,
                             id_type=body.id_type, id_number=body.id_number,
                             role=body.role, reason=body.reason).to_json()


@router.post("/cases/parties/remove")
def remove(body: RemoveIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Remove a party from a case, with a reason (the row stays, ended)."""
    return desk(svc).remove(actor, body.case, body.party, reason=body.reason).to_json()


@router.get("/cases/parties")
def parties(case: str, actor: ActorDep, svc: ServicesDep,
            history: bool = False) -> dict[str, object]:
    """The parties of a case you may see (``history``: with removed and corrected
    ones and what ended them)."""
    found = desk(svc).parties(actor, case, history=history)
    return {"case": case, "parties": [p.to_json() for p in found]}


@router.post("/cases/parties/find")
def find(body: FindIn, actor: ActorDep, svc: ServicesDep) -> dict[str, object]:
    """Cases you may see with a current party of this ID number (exact) or whose name
    contains ``name``; cases hidden from you are not shown or counted."""
    found = desk(svc).find(actor, id_number=body.id_number, name=body.name)
    return {"cases": [m.to_json() for m in found]}


__all__ = ["router"]
