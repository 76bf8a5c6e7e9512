"""Cameras and officers overdue for offload, one page at a time, for the web desk.

``docks.overdue.overdue`` (behind ``GET /dock/overdue`` and ``evidock dock overdue``)
loads every dock session into Python; a station that has run for years has one per
offload. This asks the database the same question with the same rule: a camera (or
officer) counts as offloaded at the ``ended_at`` of its latest-started session whose
outcome is ``completed`` or ``findings``; it is overdue when that is older than the
window, or it never had one; "last attempt" is its latest-started session of any
outcome. Cameras first, then officers, each by id in code point order (as Python sorts
them, on PostgreSQL too whatever the database's collation), with LIMIT/OFFSET. The
permission and the audit event are the route's (``equipment.view``; ``dock.overdue``
with the window and the count).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from archive.catalog import Catalog, Device, DockSession, Officer
from records.permissions import Actor, Gate, P

#: Outcomes in which every file was looked at (docks.overdue.FINISHED).
FINISHED = ("completed", "findings")


@dataclass(frozen=True, slots=True)
class OverduePage:
    rows: tuple[dict[str, Any], ...]  # as docks.overdue.Overdue.to_json
    total: int
    offset: int
    window_h: float


def _latest(column: str, ident: ColumnElement[str], key: str, *, finished: bool) -> Any:
    """``column`` of the latest-started (finished) session of this camera or officer: a
    correlated subquery per id (ids are few; the device's sessions are indexed).
    Measured: a window function joined here was re-run per outer row by SQLite."""
    ds = DockSession.__table__  # type: ignore[attr-defined]
    query = select(ds.c[column]).where(ds.c[key] == ident)
    if finished:
        query = query.where(ds.c.outcome.in_(FINISHED), ds.c.ended_at.is_not(None))
    return (query.order_by(ds.c.started_at.desc(), ds.c.id.desc()).limit(1)
            .scalar_subquery())


def _kind(kind: str, ident: ColumnElement[str], key: str, cutoff: datetime) -> Any:
    done = _latest("ended_at", ident, key, finished=True)
    return (select(literal(kind).label("kind"), ident.label("id"),
                   done.label("last_offload"),
                   _latest("started_at", ident, key, finished=False).label("last_attempt"),
                   _latest("outcome", ident, key, finished=False).label("last_outcome"))
            .where(ident != "", or_(done.is_(None), done < cutoff)))


def overdue_page(catalog: Catalog, gate: Gate, actor: Actor, *, now: datetime,
                 window: timedelta, offset: int = 0, limit: int = 50) -> OverduePage:
    """One page of the overdue report (audited as the route audits it)."""
    gate.require(actor, P.EQUIPMENT_VIEW)
    cutoff = now - window
    both = union_all(
        _kind("camera", Device.__table__.c.serial, "device_serial", cutoff),  # type: ignore[attr-defined]
        _kind("officer", Officer.__table__.c.police_number, "officer_id", cutoff),  # type: ignore[attr-defined]
    ).subquery()
    ident: ColumnElement[str] = both.c.id
    if catalog.engine.dialect.name == "postgresql":
        # Python's sorted() (and SQLite's BINARY) order by code point; PostgreSQL's by the
        # database's collation, which an agency's cluster (zh_CN, en_US, ICU) sets apart:
        # there "a1" comes before "B1" and "DSJ_9" before "DSJ10". Bytes of UTF-8, as "C"
        # compares them, are in code point order.
        ident = ident.collate("C")
    with catalog.engine.connect() as conn:
        # Counted by the same query that pages (the subqueries run once).
        found = conn.execute(select(both, func.count().over().label("total"))
                             .order_by(both.c.kind, ident)
                             .offset(max(offset, 0)).limit(max(limit, 1))).mappings().all()
        total = int(found[0]["total"]) if found else int(conn.execute(
            select(func.count()).select_from(both)).scalar_one())
    rows = tuple(_row({k: v for k, v in r.items() if k != "total"}, now) for r in found)
    gate.read(actor, "dock.overdue", [],  # audit details carry no floats
              {"window_s": int(window.total_seconds()), "overdue": total})
    return OverduePage(rows=rows, total=total, offset=offset,
                       window_h=window.total_seconds() / 3600)


def _row(r: dict[str, Any], now: datetime) -> dict[str, Any]:
    done, last = r["last_offload"], r["last_attempt"]
    age = (now - done).total_seconds() / 3600 if done is not None else None
    return {"kind": r["kind"], "id": r["id"],
            "last_offload": done.isoformat() if done else None,
            "last_attempt": last.isoformat() if last else None,
            "last_outcome": r["last_outcome"],
            "age_h": None if age is None else round(age, 2)}


__all__ = ["FINISHED", "OverduePage", "overdue_page"]
