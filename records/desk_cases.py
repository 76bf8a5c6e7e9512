"""The case list one page at a time, paginated by the database (the web desk's list).

:meth:`records.dossier.Dossier.list` folds every case in Python; at 10,000 cases a page
must not. This applies the same rule in SQL: a case's label is its newest sensitivity
event (else the label it was created with), its status the newest closing or reopening,
and the reader sees it if the unit is one of theirs (or they have all units) and the
label is ``none`` or one of their clearances. The read is audited as ``case.list`` with
what was shown and how many matching cases were hidden, as the existing list does.

A closing or relabel counts only when an audit event vouches for it
(:func:`records.casebook.believed_events`). SQL checks that a binding row exists; the
rows of the page are then folded exactly as the Casebook folds them, and a case whose
exact fold the reader may not see is dropped from the page (only a binding forged into
the catalog makes the two differ; the page then holds fewer rows, never a hidden one).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, exists, func, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col
from sqlmodel import select as sm_select

from archive.bindings_model import Binding
from archive.catalog import Catalog
from archive.catalog.types import table_of
from config.access import SENSITIVITIES
from integrity.errors import InvalidRequest
from records.casebook import CaseView, believed_events, fold_case
from records.dossier import STATUSES
from records.models import Case, CaseEvent
from records.permissions import Actor, Gate, P

_CASE, _EVENT, _BIND = table_of(Case), table_of(CaseEvent), table_of(Binding)
_UPPER, _LOWER = string.ascii_uppercase, string.ascii_lowercase
_FOLD = str.maketrans(_UPPER, _LOWER)


@dataclass(frozen=True, slots=True)
class CaseFilter:
    """What the list is narrowed to; ``text`` is part of the number or the title (ASCII
    letters in either case, on SQLite and PostgreSQL alike)."""

    text: str = ""
    unit: str | None = None
    status: str | None = None
    case_type: str | None = None

    def to_json(self) -> dict[str, object]:
        return {"text": self.text or None, "unit": self.unit, "status": self.status,
                "type": self.case_type}


@dataclass(frozen=True, slots=True)
class CasePage:
    rows: tuple[CaseView, ...]
    total: int  # visible cases matching the filter (all pages)
    offset: int
    limit: int


def _vouched(event: Any) -> ColumnElement[bool]:
    """The event has a binding row (its digest is checked on the page's rows)."""
    return exists().where(_BIND.c.table_name == "caseevent",
                          _BIND.c.row_id == cast(event.c.id, String))


def _state() -> tuple[Any, ColumnElement[str], ColumnElement[str]]:
    """(cases joined with their newest label and status events, label, status)."""
    ev = _EVENT
    last_label = (select(ev.c.case_id, func.max(ev.c.id).label("eid"))
                  .where(ev.c.kind == "sensitivity", _vouched(ev))
                  .group_by(ev.c.case_id).subquery("last_label"))
    last_state = (select(ev.c.case_id, func.max(ev.c.id).label("eid"))
                  .where(or_(ev.c.kind == "reopened",
                             and_(ev.c.kind == "closed", _vouched(ev))))
                  .group_by(ev.c.case_id).subquery("last_state"))
    label_ev, state_ev = ev.alias("label_ev"), ev.alias("state_ev")
    joined = (_CASE.outerjoin(last_label, last_label.c.case_id == _CASE.c.id)
              .outerjoin(label_ev, label_ev.c.id == last_label.c.eid)
              .outerjoin(last_state, last_state.c.case_id == _CASE.c.id)
              .outerjoin(state_ev, state_ev.c.id == last_state.c.eid))
    label = func.coalesce(label_ev.c.value, _CASE.c.sensitivity)
    status = func.coalesce(state_ev.c.kind, "reopened")
    return joined, label, status


def _matching(want: CaseFilter, status: ColumnElement[str],
              dialect: str) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if want.unit is not None:
        out.append(_CASE.c.unit == want.unit)
    if want.case_type is not None:
        out.append(_CASE.c.case_type == want.case_type)
    if want.status == "closed":
        out.append(status == "closed")
    elif want.status == "open":
        out.append(status != "closed")
    if want.text:
        out.append(or_(_contains(_CASE.c.number, want.text, dialect),
                       _contains(_CASE.c.title, want.text, dialect)))
    return out


def _contains(column: ColumnElement[str], text: str,
              dialect: str) -> ColumnElement[bool]:
    """``text`` is part of ``column``: ASCII letters in either case, every other
    character exactly, on both databases. That is SQLite's LIKE; PostgreSQL's LIKE minds
    case (``ktv`` would not find ``KTV``) and its ILIKE and lower() fold by the cluster's
    locale, so there the column's ASCII letters are lowered by translate()."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace(
        "_", "\\_") + "%"
    if dialect == "sqlite":
        return column.like(pattern, escape="\\")
    return func.translate(column, _UPPER, _LOWER).like(pattern.translate(_FOLD),
                                                       escape="\\")


def _visible(actor: Actor, label: ColumnElement[str]) -> list[ColumnElement[bool]]:
    cleared = [x for x in SENSITIVITIES if x == "none" or x in actor.clearances]
    out: list[ColumnElement[bool]] = [label.in_(cleared)]
    if actor.units:
        out.append(_CASE.c.unit.in_(sorted(actor.units)))
    return out


def _count(conn: Connection, joined: Any, where: Sequence[ColumnElement[bool]]) -> int:
    return int(conn.execute(select(func.count()).select_from(joined).where(*where))
               .scalar_one())


def _folded(catalog: Catalog, ids: Sequence[str]) -> dict[str, CaseView]:
    """The page's cases folded exactly as :class:`records.casebook.Casebook` folds them."""
    with Session(catalog.engine) as s:
        rows = s.exec(sm_select(Case).where(col(Case.id).in_(list(ids)))).all()
        events = believed_events(s, s.exec(sm_select(CaseEvent).where(
            col(CaseEvent.case_id).in_(list(ids)))))
    by_case: dict[str, list[CaseEvent]] = {}
    for e in events:
        by_case.setdefault(e.case_id, []).append(e)
    return {r.id: fold_case(r, by_case.get(r.id, [])) for r in rows}


class CaseList:
    """One page of the cases a reader may see, newest (or oldest) first."""

    def __init__(self, *, catalog: Catalog, gate: Gate) -> None:
        self.catalog, self.gate = catalog, gate

    def page(self, actor: Actor, want: CaseFilter, *, offset: int = 0, limit: int = 50,
             newest_first: bool = True) -> CasePage:
        if want.status is not None and want.status not in STATUSES:
            raise InvalidRequest(f"unknown status {want.status!r}; one of {list(STATUSES)}",
                                 status=want.status)
        if offset < 0 or not 0 < limit <= 500:
            raise InvalidRequest("a page needs offset >= 0 and 0 < limit <= 500",
                                 offset=offset, limit=limit)
        self.gate.require(actor, P.CASE_VIEW)
        joined, label, status = _state()
        matching = _matching(want, status, self.catalog.engine.dialect.name)
        seen = [*matching, *_visible(actor, label)]
        order = (_CASE.c.created_at.desc(), _CASE.c.id.desc()) if newest_first else (
            _CASE.c.created_at, _CASE.c.id)
        with self.catalog.engine.connect() as conn:
            total = _count(conn, joined, seen)
            hidden = _count(conn, joined, matching) - total
            ids = [r[0] for r in conn.execute(select(_CASE.c.id).select_from(joined)
                                              .where(*seen).order_by(*order)
                                              .offset(offset).limit(limit))]
        folded = _folded(self.catalog, ids)
        rows = tuple(folded[i] for i in ids
                     if actor.sees(unit=folded[i].unit, sensitivity=folded[i].sensitivity))
        self.gate.read(actor, "case.list", [f"case:{c.id}" for c in rows],
                       {"filters": want.to_json(), "shown": len(rows),
                        "hidden": hidden + len(ids) - len(rows), "offset": offset,
                        "matching": total})
        return CasePage(rows=rows, total=total, offset=offset, limit=limit)


__all__ = ["CaseFilter", "CaseList", "CasePage"]
