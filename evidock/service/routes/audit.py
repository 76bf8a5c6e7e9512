"""The audit log (signed head, proofs, events, verification), fixity, refused verbs.

Each endpoint calls :class:`records.auditdesk.AuditDesk`, which asks the gate
(``audit.view``) and records the read as an audit event of the identified user; the
answer is the JSON `evidock audit …` / `evidock fixity` print with ``--json``.
Repairs (`evidock fixity --repair`, `evidock repair`) need ``fixity.repair`` and the
object store of ``[upload]``, whose credentials only the service holds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from archive.audit.query import MAX_LIMIT
from archive.replica.objectstore import ObjectStore
from evidock.service.deps import ActorDep, ServicesDep
from evidock.wiring import Services
from records.auditdesk import AuditDesk

router = APIRouter(tags=["audit"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VerifyIn(_Body):
    #: Saved heads as the JSON text `audit head` printed (kept outside the station).
    against: list[str] = Field(default_factory=list, max_length=100)


class FixityIn(_Body):
    mode: Literal["all", "sample", "since"] = "all"
    sample: int | None = Field(default=None, ge=0)
    since: str | None = None  # ISO time with a zone
    seed: int | None = None
    sha256: bool = False
    repair: bool = False  # then restore what was found missing or damaged


class RepairIn(_Body):
    blobs: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]] = Field(
        min_length=1, max_length=1000)


class RefusalIn(_Body):
    verb: Literal["delete", "edit", "rm"]
    target: str = Field(max_length=4096)


def _desk(svc: Services) -> AuditDesk:
    return AuditDesk(gate=svc.gate(), audit=svc.audit(), store=svc.store, keys=svc.keys,
                     clock=svc.clock)


@router.get("/audit/head")
def head(actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """The signed tree head over the whole log (this read included)."""
    return _desk(svc).head(actor)


@router.get("/audit/proof/{seq}")
def proof(seq: int, actor: ActorDep, svc: ServicesDep,
          size: Annotated[int | None, Query(ge=0)] = None) -> dict[str, Any]:
    """Inclusion proof of event ``seq`` against the latest head covering it (or ``size``)."""
    return _desk(svc).proof(actor, seq, size=size)


@router.get("/audit/consistency")
def consistency(actor: ActorDep, svc: ServicesDep, old: Annotated[int, Query(ge=0)],
                new: Annotated[int | None, Query(ge=0)] = None) -> dict[str, Any]:
    """RFC 6962 consistency proof between sizes ``old`` and ``new`` (default: now)."""
    return _desk(svc).consistency(actor, old, new)


class EventsIn(_Body):
    """Filters and paging of the event list (query parameters)."""

    action: str | None = None  # exact, or a prefix ending in "*"
    actor: str | None = None
    subject: str | None = None
    since: datetime | None = None  # with a zone
    until: datetime | None = None
    after: int | None = Field(default=None, ge=-1)
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


@router.get("/audit/events")
def events(params: Annotated[EventsIn, Query()], actor: ActorDep, svc: ServicesDep,
           ) -> dict[str, Any]:
    """A page of events in sequence order; ``next_after`` is the next page's cursor."""
    return _desk(svc).events(actor, **params.model_dump())


@router.post("/audit/verify")
def verify(body: VerifyIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Recompute the whole log; findings are the answer (the client exits 1 on any)."""
    return _desk(svc).verify(actor, saved=body.against)


def _objects(svc: Services) -> ObjectStore:
    return svc.upload_queue().objects  # E_CONFIG unless [upload] is enabled


@router.post("/fixity")
def fixity(body: FixityIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Re-hash stored blobs from disk; findings are the answer (exit 1 on any). With
    ``repair``: then restore every blob found missing, altered or unreadable."""
    plan = body.model_dump(exclude={"repair"})
    if body.repair:
        return _desk(svc).fixity_repair(actor, objects=lambda: _objects(svc), **plan)
    return _desk(svc).fixity(actor, **plan).to_dict()


@router.post("/fixity/repair")
def repair(body: RepairIn, actor: ActorDep, svc: ServicesDep) -> dict[str, Any]:
    """Restore the named blobs from their verified WORM copies; outcomes are the answer
    (the client exits 1 on any failure)."""
    return _desk(svc).repair(actor, body.blobs, objects=lambda: _objects(svc)).to_dict()


@router.post("/audit/refusals")
def refusal(body: RefusalIn, actor: ActorDep, svc: ServicesDep) -> None:
    """Record an attempt to delete or edit evidence, then refuse it (always)."""
    _desk(svc).refuse(actor, verb=body.verb, target=body.target)
