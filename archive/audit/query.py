"""Finding audit events: filters and pages, evaluated by the database.

A page holds the events after a cursor (``after``: a sequence number) in sequence
order, at most ``limit``; ``next_after`` is the cursor of the next page (None on the
last). Filters: ``action`` exactly, or a prefix when it ends in ``*`` (``read.*``);
``actor`` exactly; ``subject``: one of the event's subjects, exactly; ``since`` (at or
after) and ``until`` (before) on the event's time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, TextClause, func, select, text
from sqlalchemy.engine import Connection, Engine

from archive.audit.format import iso
from archive.audit.log import AuditEvent
from archive.catalog.types import table_of
from integrity.errors import InvalidRequest

__all__ = ["MAX_LIMIT", "EventPage", "EventQuery", "event_conditions", "find_events"]

MAX_LIMIT = 1000
_T = table_of(AuditEvent)
_Clause = ColumnElement[bool] | TextClause


@dataclass(frozen=True, kw_only=True)
class EventQuery:
    action: str | None = None
    actor: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest(f"limit must be between 1 and {MAX_LIMIT}",
                                 field="limit", value=self.limit)
        if self.after is not None and self.after < -1:
            raise InvalidRequest("after must be a sequence number (or -1)", field="after",
                                 value=self.after)
        for name in ("since", "until"):
            when = getattr(self, name)
            if when is not None and when.tzinfo is None:
                raise InvalidRequest(f"{name} needs a time zone", field=name,
                                     value=when.isoformat())

    def to_dict(self) -> dict[str, Any]:
        """The filters as given (for the audit event of the read, and the answer)."""
        return {"action": self.action, "actor": self.actor, "subject": self.subject,
                "since": iso(self.since) if self.since else None,
                "until": iso(self.until) if self.until else None,
                "after": self.after, "limit": self.limit}


@dataclass(frozen=True)
class EventPage:
    events: tuple[dict[str, Any], ...]
    next_after: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"events": list(self.events), "next_after": self.next_after}


def find_events(engine: Engine, query: EventQuery) -> EventPage:
    """One page of the events ``query`` selects (one indexed range scan on seq)."""
    with engine.connect() as conn:
        stmt = select(_T)
        for condition in event_conditions(conn, query):
            stmt = stmt.where(condition)
        rows = conn.execute(stmt.order_by(_T.c.seq).limit(query.limit + 1)).all()
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    events = tuple({"seq": r.seq, "at": iso(r.at), "actor": r.actor, "action": r.action,
                    "subjects": r.subjects, "details": r.details,
                    "prev_hash": r.prev_hash, "leaf_hash": r.leaf_hash} for r in rows)
    return EventPage(events, rows[-1].seq if more and rows else None)


def event_conditions(conn: Connection, q: EventQuery) -> list[_Clause]:
    out: list[_Clause] = []
    if q.after is not None:
        out.append(_T.c.seq > q.after)
    if q.action is not None:
        if q.action.endswith("*"):
            prefix = q.action[:-1]  # substr, not LIKE: SQLite's LIKE ignores case
            out.append(func.substr(_T.c.action, 1, len(prefix)) == prefix)
        else:
            out.append(_T.c.action == q.action)
    if q.actor is not None:
        out.append(_T.c.actor == q.actor)
    if q.since is not None:
        out.append(_T.c.at >= q.since)
    if q.until is not None:
        out.append(_T.c.at < q.until)
    if q.subject is not None:
        out.append(_has_subject(conn, q.subject))
    return out


def _has_subject(conn: Connection, subject: str) -> _Clause:
    """``subject`` is one of the event's subjects (a JSON array stored as text)."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return text("EXISTS (SELECT 1 FROM json_each(auditevent.subjects) AS s "
                    "WHERE s.value = :audit_subject)").bindparams(audit_subject=subject)
    if dialect == "postgresql":
        return text("CAST(auditevent.subjects AS jsonb) @> CAST(:audit_subject AS jsonb)"
                    ).bindparams(audit_subject=json.dumps([subject]))
    # Elsewhere: the element as it is stored (compact JSON) inside the array's text.
    return _T.c.subjects.contains(json.dumps(subject, ensure_ascii=False),
                                  autoescape=True)
