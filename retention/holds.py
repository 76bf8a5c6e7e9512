"""Legal holds: while one is in force on a case, a recording or an officer, nothing it
covers is deleted (the planner keeps it, rule "hold").

A hold is placed by one user and released by a different one, with a reason each time;
both are append-only rows (``Hold``, ``HoldRelease``) committed with their audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlmodel import Session, col, select

from archive.audit.log import AuditLog
from archive.bindings import bind, vouched
from archive.catalog import Catalog, Recording
from archive.tombstones import tombstoned_recordings
from integrity.errors import (
    CatalogError,
    CenterDecides,
    Conflict,
    InvalidRequest,
    NotFound,
    SelfApproval,
)
from records.casebook import Casebook
from records.permissions import Actor, Gate, P
from retention.models import Hold, HoldRelease
from retention.policy import HoldRef, HoldScope

SCOPES: tuple[HoldScope, ...] = ("case", "recording", "officer")


def hold_request(scope: str, target: str, reason: str) -> tuple[str, str]:
    """A hold's scope checked and its target and reason stripped, both required (the
    station's holds and the center's)."""
    if scope not in SCOPES:
        raise InvalidRequest(f"hold scope {scope!r} is not one of {list(SCOPES)}",
                             scope=scope)
    target, reason = target.strip(), reason.strip()
    if not target or not reason:
        raise InvalidRequest("a hold needs a target and a reason", scope=scope)
    return target, reason
_Views = list["HoldView"]  # `list` is also a HoldDesk method name


@dataclass(frozen=True, slots=True)
class HoldView:
    id: str
    scope: HoldScope
    target: str  # case id, recording id or police number
    label: str  # what people call the target (the case number for a case)
    reason: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    release_reason: str | None
    released_at: datetime | None
    source: str | None = None  # the center hold carried out here (retention/center_sync.py)

    @property
    def active(self) -> bool:
        return self.released_by is None

    def ref(self) -> HoldRef:
        return HoldRef(hold_id=self.id, scope=self.scope, target=self.target)

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "scope": self.scope, "target": self.target,
                "label": self.label, "reason": self.reason, "placed_by": self.placed_by,
                "placed_at": self.placed_at.isoformat(), "active": self.active,
                "released_by": self.released_by, "release_reason": self.release_reason,
                "released_at": None if self.released_at is None
                else self.released_at.isoformat(), "source": self.source}


def _stored_scope(hold: Hold) -> HoldScope:
    """A stored hold's scope (a str column); :meth:`HoldDesk.add` writes only SCOPES."""
    if hold.scope in SCOPES:
        return hold.scope
    raise CatalogError(f"hold {hold.id}: stored scope {hold.scope!r} is not one of {SCOPES}",
                       hold=hold.id)


def fold_holds(holds: Iterable[Hold], releases: Iterable[HoldRelease],
               labels: dict[str, str] | None = None) -> list[HoldView]:
    """Every hold with its release (if any), in the order placed."""
    released = {r.hold_id: r for r in releases}
    labels = labels or {}
    out = []
    for h in sorted(holds, key=lambda h: (h.placed_at, h.id)):
        r = released.get(h.id)
        out.append(HoldView(
            id=h.id, scope=_stored_scope(h), target=h.target,
            label=labels.get(h.target, h.target) if h.scope == "case" else h.target,
            reason=h.reason, placed_by=h.placed_by, placed_at=h.placed_at,
            released_by=r.released_by if r else None, release_reason=r.reason if r else None,
            released_at=r.at if r else None, source=h.source))
    return out


class HoldDesk:
    def __init__(self, *, catalog: Catalog, gate: Gate, audit: AuditLog,
                 clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex) -> None:
        self.catalog, self.gate, self.audit, self.clock = catalog, gate, audit, clock
        self.new_id = new_id
        self.book = Casebook(catalog=catalog)

    def add(self, actor: Actor, *, scope: str, target: str, reason: str) -> HoldView:
        """Place a hold. ``target``: a case number (or id), a recording id, a police number."""
        target, reason = hold_request(scope, target, reason)
        resolved = self._resolve(actor, scope, target)
        now = self.clock()
        row = Hold(id=self.new_id(), scope=scope, target=resolved, reason=reason,
                   placed_by=actor.name, placed_at=now)
        with self.catalog.transaction() as s:
            # Ordered with retention runs (see RetentionExecutor): a recording deleted
            # while this request was on its way is refused, never held after the fact.
            self.audit.lock(s)
            if scope == "recording" and tombstoned_recordings(s, [resolved]):
                raise _deleted(resolved)
            bind(s, self.audit, row, actor=actor.audit_name, action="hold.add",
                              subjects=[f"hold:{row.id}", f"{scope}:{resolved}"],
                              details={"scope": scope, "target": resolved, "given": target,
                                       "reason": reason}, at=now)
        return self.view(row.id)

    def _resolve(self, actor: Actor, scope: str, target: str) -> str:
        """The stored target (case id for a case); checks the actor may place it."""
        if scope == "case":
            case = self.book.case(target)
            self.gate.require(actor, P.HOLD_PLACE, subjects=[f"case:{case.id}"],
                              unit=case.unit, sensitivity=case.sensitivity)
            return case.id
        self.gate.require(actor, P.HOLD_PLACE, subjects=[f"{scope}:{target}"])
        if scope == "recording":
            with Session(self.catalog.engine) as s:
                if s.get(Recording, target) is None:
                    raise NotFound(f"no recording {target}", recording=target)
            if not all(self._seen(actor, [(scope, target)])):
                self.gate.refuse(actor, P.HOLD_PLACE, [f"recording:{target}"],
                                 f"{actor.name} may not see recording {target} (it is "
                                 "linked to a case beyond their units or clearance)")
        return target

    def _seen(self, actor: Actor, targets: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (scope, target): may ``actor`` see what it holds? A case by its own
        unit and label, a recording by those of every case it is linked to (wherever
        the hold was placed from), an officer always."""
        cases = self.book.governing_each([[f"{scope}:{key}"] for scope, key in targets])
        return [actor.sees_every(c) for c in cases]

    def release(self, actor: Actor, hold_id: str, *, reason: str) -> HoldView:
        """Release a hold; only a user other than the one who placed it may."""
        self.gate.require(actor, P.HOLD_RELEASE, subjects=[f"hold:{hold_id}"])
        hold = self.view(hold_id)
        if not all(self._seen(actor, [(hold.scope, hold.target)])):
            self._conceal(actor, hold)
        if not reason.strip():
            raise InvalidRequest("a reason is required to release a hold", hold=hold_id)
        if not hold.active:
            raise Conflict(f"hold {hold_id} was already released by {hold.released_by}",
                           hold=hold_id)
        if hold.source is not None:  # the center placed it: released there, by two people
            self.gate.refuse(actor, P.HOLD_RELEASE, [f"hold:{hold_id}"],
                             f"hold {hold_id} was placed at the center (center hold "
                             f"{hold.source}); it is released there", error=CenterDecides)
        if hold.placed_by == actor.name:
            self.gate.refuse(actor, P.HOLD_RELEASE, [f"hold:{hold_id}"],
                             f"{actor.name} placed hold {hold_id}; another user releases it",
                             error=SelfApproval)
        now = self.clock()
        with self.catalog.transaction() as s:
            if s.exec(select(HoldRelease).where(HoldRelease.hold_id == hold_id)).first():
                raise Conflict(f"hold {hold_id} was already released", hold=hold_id)
            bind(s, self.audit, HoldRelease(hold_id=hold_id, released_by=actor.name,
                                            reason=reason.strip(), at=now),
                 actor=actor.audit_name, action="hold.release",
                              subjects=[f"hold:{hold_id}", f"{hold.scope}:{hold.target}"],
                              details={"scope": hold.scope, "target": hold.target,
                                       "placed_by": hold.placed_by,
                                       "reason": reason.strip()}, at=now)
        return self.view(hold_id)

    def _conceal(self, actor: Actor, hold: HoldView) -> NoReturn:
        """Refuse a hold on records the actor may not see as if it did not exist (its
        existence says a secret case is held), but record the attempt."""
        self.audit.record(actor=actor.audit_name, action="access.refused",
                          subjects=[f"hold:{hold.id}", f"{hold.scope}:{hold.target}"],
                          details={"permission": P.HOLD_RELEASE.value,
                                   "code": NotFound.code,
                                   "why": f"{actor.name} may not see the held {hold.scope}"},
                          at=self.clock())
        raise NotFound(f"no hold {hold.id}", hold=hold.id)

    def views(self, ids: Iterable[str] | None = None) -> list[HoldView]:
        """Holds with their releases, no permission check (for the composition root)."""
        with Session(self.catalog.engine) as s:
            holds, releases = _rows(s, ids)
        cases = [h.target for h in holds if h.scope == "case"]
        labels = {c.id: c.number for c in self.book.cases() if c.id in cases} if cases else {}
        return fold_holds(holds, releases, labels)

    def view(self, hold_id: str) -> HoldView:
        found = self.views([hold_id])
        if not found:
            raise NotFound(f"no hold {hold_id}", hold=hold_id)
        return found[0]

    def active(self, session: Session | None = None) -> tuple[HoldRef, ...]:
        """The holds in force, for the planner (read through ``session`` if given: the
        executor's deletion transaction)."""
        if session is None:
            with Session(self.catalog.engine) as own:
                return self.active(own)
        return tuple(v.ref() for v in fold_holds(*_rows(session, None)) if v.active)

    def list(self, actor: Actor, *, active_only: bool = True) -> _Views:
        """Holds (in force, or all) the actor may see, as a read audited for ``actor``."""
        return self.listing(actor, active_only=active_only)[0]

    def listing(self, actor: Actor, *, active_only: bool = True) -> tuple[_Views, int]:
        """:meth:`list`, and how many holds were left out: those on a case or recording
        beyond the actor's units or clearance (counted, in the answer and the audit)."""
        if not any(actor.may(p) for p in (P.HOLD_PLACE, P.HOLD_RELEASE, P.RETENTION_PLAN)):
            self.gate.require(actor, P.HOLD_PLACE, subjects=["holds"])
        views = [v for v in self.views() if v.active or not active_only]
        seen = self._seen(actor, [(v.scope, v.target) for v in views])
        shown = [v for v, ok in zip(views, seen, strict=True) if ok]
        self.gate.read(actor, "hold.list", [f"hold:{v.id}" for v in shown],
                       {"active_only": active_only, "shown": len(shown),
                        "hidden": len(views) - len(shown)})
        return shown, len(views) - len(shown)


def _rows(s: Session, ids: Iterable[str] | None) -> tuple[list[Hold], list[HoldRelease]]:
    """Holds (all, or those of ``ids``) and their releases."""
    query = select(Hold)
    if ids is not None:
        query = query.where(col(Hold.id).in_(list(ids)))
    holds = list(s.exec(query))
    releases = list(s.exec(select(HoldRelease).where(
        col(HoldRelease.hold_id).in_([h.id for h in holds]))))
    # A release no audit event vouches for (written into the catalog directly) does
    # not end a hold: retention keeps holding, `audit verify` reports the row.
    return holds, vouched(s, releases)


def _deleted(recording_id: str) -> Conflict:
    return Conflict(f"recording {recording_id} was already deleted by retention",
                    recording=recording_id)


__all__ = ["SCOPES", "HoldDesk", "HoldView", "fold_holds"]
