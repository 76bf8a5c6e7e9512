"""The audit log as the web desk lists it: newest first, one page from the database.

The API's event list (:meth:`records.auditdesk.AuditDesk.events`) pages forward from
the oldest event; a person at the desk wants the latest first. This pages backwards
(keyset on ``seq``: ``before`` is the cursor) with the very same filters
(:func:`archive.audit.query.find_events`' conditions), the same gate check
(``audit.view``), the same hiding of events naming a case or recording the reader may
not see (its number and hashes stay, nothing it says) and the same audit event of the
read (``read.audit.events``). ``refusals`` adds one filter the API has not: only what
was refused (``access.refused``, ``access.login_failed``, the always-refused
``evidence.*`` verbs).

The head and proofs are the API's own (:meth:`AuditDesk.head`, :meth:`AuditDesk.proof`);
:func:`check_head` and :func:`check_proof_doc` say whether they verify against the
station's keyring, as ``evidock audit verify`` and ``check_proof`` judge them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select

from archive.audit.format import SignedHead, iso
from archive.audit.log import AuditEvent
from archive.audit.query import EventQuery, event_conditions
from archive.audit.verify import check_proof
from archive.catalog.types import table_of
from integrity.errors import InvalidRequest, KeyError_
from integrity.keys import Keyring
from records.auditdesk import AuditDesk, hidden_event
from records.permissions import Actor, P

_T = table_of(AuditEvent)
_LOG = "audit-log"
#: Actions that are refusals whatever their details say.
REFUSAL_ACTIONS = ("access.refused", "access.login_failed")
REFUSED_PREFIX = "evidence."  # delete/edit/rm of evidence: always refused (log.refuse)


@dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """What the desk's audit page asks for (``before``: the cursor of an older page)."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "*"
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    refusals: bool = False
    before: int | None = None
    limit: int = 50

    def query(self) -> EventQuery:
        """The API's query of the same filters (it checks them the same way)."""
        return EventQuery(action=self.action, actor=self.actor, subject=self.subject,
                          since=self.since, until=self.until, limit=self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {**self.query().to_dict(), "after": None, "refusals": self.refusals,
                "before": self.before, "order": "newest first"}


@dataclass(frozen=True, slots=True)
class DeskEventPage:
    events: tuple[dict[str, Any], ...]  # newest first; hidden ones as placeholders
    older: int | None  # the ``before`` cursor of the next (older) page
    hidden: int


def refusal_clause() -> Any:
    return or_(_T.c.action.in_(REFUSAL_ACTIONS),
               func.substr(_T.c.action, 1, len(REFUSED_PREFIX)) == REFUSED_PREFIX)


def find_newest(desk: AuditDesk, flt: EventFilter) -> tuple[tuple[dict[str, Any], ...],
                                                             int | None]:
    """One page of events, newest first: one indexed range scan on seq, descending."""
    query = flt.query()
    with desk.audit.catalog.engine.connect() as conn:
        stmt = select(_T)
        for condition in event_conditions(conn, query):
            stmt = stmt.where(condition)
        if flt.before is not None:
            stmt = stmt.where(_T.c.seq < flt.before)
        if flt.refusals:
            stmt = stmt.where(refusal_clause())
        rows = conn.execute(stmt.order_by(_T.c.seq.desc()).limit(flt.limit + 1)).all()
    more = len(rows) > flt.limit
    rows = rows[:flt.limit]
    events = tuple({"seq": r.seq, "at": iso(r.at), "actor": r.actor, "action": r.action,
                    "subjects": r.subjects, "details": r.details,
                    "prev_hash": r.prev_hash, "leaf_hash": r.leaf_hash} for r in rows)
    return events, (rows[-1].seq if more and rows else None)


def events(desk: AuditDesk, actor: Actor, flt: EventFilter) -> DeskEventPage:
    """What :meth:`AuditDesk.events` does (gate, hiding, audit of the read), newest
    first."""
    if flt.before is not None and flt.before < 0:
        raise InvalidRequest("before must be a sequence number", field="before",
                             value=flt.before)
    desk.gate.require(actor, P.AUDIT_VIEW, subjects=[_LOG])
    found, older = find_newest(desk, flt)
    governing = desk.book.governing_each([e["subjects"] for e in found])
    shown = tuple(e if actor.sees_every(cases) else hidden_event(e)
                  for e, cases in zip(found, governing, strict=True))
    hidden = sum(1 for e in shown if e.get("hidden"))
    desk.gate.read(actor, "audit.events", [_LOG],
                   {**flt.to_dict(), "returned": len(shown), "hidden": hidden})
    return DeskEventPage(events=shown, older=older, hidden=hidden)


def keyring_of(desk: AuditDesk) -> Keyring | None:
    try:
        return desk.keys.keyring()
    except KeyError_:
        return None


def check_head(head: dict[str, Any], keyring: Keyring | None) -> list[str]:
    """Finding codes of a signed head (empty: the station's key signed it)."""
    return [f.code for f in SignedHead.from_dict(head).check(keyring, "head")]


def check_proof_doc(doc: dict[str, Any], keyring: Keyring | None) -> list[str]:
    """Finding codes of an inclusion proof document (empty: it verifies)."""
    return [f.code for f in check_proof(doc, keyring)]


__all__ = ["REFUSAL_ACTIONS", "DeskEventPage", "EventFilter", "check_head",
           "check_proof_doc", "events", "find_newest", "keyring_of", "refusal_clause"]
