"""Export requests a page at a time, for the web desk (the approvals queue and lists).

:meth:`records.exports.ExportDesk.list` folds every request in Python; a desk list
must page in the database. This query applies the same rules in SQL: the permission
(``export.approve``, ``export.run`` or ``export.request``, whichever the user holds), a
request shown only when the user sees the unit and current label of every case that
governs it (a case request: its case; a recording request: the cases the recording is
actively linked to), and the status folded from the request's decisions. The page's
rows are then checked once more with the desk's own fold (:class:`Casebook`), which
also checks each vouching event's digest, so a row forged into the catalog can shorten
a page but never show a hidden request. The page is audited as ``read.export.list``,
like the list it stands for. The page's ids and their rows are read from one snapshot
(on PostgreSQL too, whose default gives each statement its own).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, and_, case, cast, exists, func, not_, or_, true
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from archive.bindings_model import Binding
from archive.catalog import Catalog
from integrity.errors import InvalidRequest
from records.casebook import Casebook, CaseView
from records.exportbook import STATUSES, RequestView, load_requests
from records.models import Case, CaseEvent, CaseLink, ExportDecision, ExportRequest
from records.permissions import Actor, Gate, P

#: What a desk list shows: the user's own requests, every request they may see, or the
#: pending ones (the approvals queue, oldest first).
VIEWS = ("mine", "all", "queue")


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: tuple[RequestView, ...]
    more: bool  # another page follows
    #: Rows the SQL gave that the desk's own fold hides (a forged catalog row); 0 else.
    dropped: int = 0


@contextmanager
def _one_snapshot(catalog: Catalog) -> Iterator[Session]:
    """A session whose statements all read the catalog as of its first one, as a SQLite
    read transaction does (PostgreSQL: REPEATABLE READ; READ COMMITTED would let a
    decision made between the page's query and its rows show, e.g., an approved request
    in the pending queue)."""
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with Session(conn) as s:
            yield s


def reading(actor: Actor) -> P:
    """The permission a list is read with (as :meth:`ExportDesk._reading`)."""
    return next((p for p in (P.EXPORT_APPROVE, P.EXPORT_RUN) if actor.may(p)),
                P.EXPORT_REQUEST)


def _label(case_row: type[Case]) -> ColumnElement[str]:
    """A case's label now: its latest vouched relabelling, else the label it was made
    with (the digest is checked on the page's rows afterwards)."""
    vouched = and_(col(Binding.table_name) == "caseevent",
                   col(Binding.row_id) == cast(col(CaseEvent.id), String))
    latest = (select(CaseEvent.value).join(Binding, vouched)
              .where(col(CaseEvent.case_id) == col(case_row.id),
                     col(CaseEvent.kind) == "sensitivity")
              .order_by(col(CaseEvent.id).desc()).limit(1).scalar_subquery())
    return func.coalesce(latest, case_row.sensitivity)


def _sees(actor: Actor, case_row: type[Case]) -> ColumnElement[bool]:
    """:meth:`Actor.sees` of a case row, in SQL."""
    unit = true() if not actor.units else col(case_row.unit).in_(sorted(actor.units))
    return and_(unit, _label(case_row).in_(sorted({"none", *actor.clearances})))


def _visible(actor: Actor) -> ColumnElement[bool]:
    """Every governing case of the request is one the actor sees."""
    c = aliased(Case)
    own_case = exists().where(col(c.id) == col(ExportRequest.case_id), _sees(actor, c))
    link, unlink = aliased(CaseLink), aliased(CaseLink)
    vouched = and_(col(Binding.table_name) == "caselink",
                   col(Binding.row_id) == cast(col(unlink.id), String))
    removed = exists().where(col(unlink.action) == "unlink", col(unlink.unlinks) == col(link.id),
                             exists().where(vouched))
    g = aliased(Case)
    hidden_link = exists().where(col(link.recording_id) == col(ExportRequest.recording_id),
                                 col(link.action) == "link", not_(removed),
                                 col(g.id) == col(link.case_id), not_(_sees(actor, g)))
    return or_(and_(col(ExportRequest.case_id).is_not(None), own_case),
               and_(col(ExportRequest.case_id).is_(None), not_(hidden_link)))


def _status(now: datetime) -> ColumnElement[str]:
    """:func:`records.exportbook.fold_request`'s status, in SQL."""
    last = (select(ExportDecision.decision)
            .where(col(ExportDecision.request_id) == col(ExportRequest.id))
            .order_by(col(ExportDecision.id).desc()).limit(1).scalar_subquery())
    until = (select(ExportDecision.valid_until)
             .where(col(ExportDecision.request_id) == col(ExportRequest.id),
                    col(ExportDecision.decision) == "approved")
             .order_by(col(ExportDecision.id).desc()).limit(1).scalar_subquery())
    return case((last.is_(None), "pending"),
                (last.in_(("approved", "released")),
                 case((until <= now, "expired"), else_="approved")),
                else_=last)


def _filters(actor: Actor, view: str, status: str | None,
             now: datetime) -> list[ColumnElement[bool]]:
    where = [_visible(actor)]
    if view == "mine":
        where.append(col(ExportRequest.requested_by) == actor.name)
    if view == "queue":  # pending: no decision yet
        where.append(not_(exists().where(col(ExportDecision.request_id) == col(ExportRequest.id))))
    elif status is not None:
        where.append(_status(now) == status)
    return where


class DeskExports:
    """The desk's paginated reading of export requests (same rules as ``export list``)."""

    def __init__(self, *, catalog: Catalog, gate: Gate, book: Casebook | None = None) -> None:
        self.catalog, self.gate = catalog, gate
        self.book = book or Casebook(catalog=catalog)

    def page(self, actor: Actor, *, view: str = "all", status: str | None = None,
             offset: int = 0, limit: int = 50) -> RequestPage:
        """One page of requests: newest first, the queue oldest first (audited)."""
        self.gate.require(actor, reading(actor))
        if view == "queue":
            self.gate.require(actor, P.EXPORT_APPROVE)
        if view not in VIEWS:
            raise InvalidRequest(f"unknown view {view!r}; one of {list(VIEWS)}", view=view)
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"unknown status {status!r}; one of {list(STATUSES)}",
                                 status=status)
        now = self.gate.clock()
        order = (col(ExportRequest.at), col(ExportRequest.id)) if view == "queue" else \
            (col(ExportRequest.at).desc(), col(ExportRequest.id).desc())
        query = (select(ExportRequest.id).where(*_filters(actor, view, status, now))
                 .order_by(*order).offset(max(offset, 0)).limit(limit + 1))
        with _one_snapshot(self.catalog) as s:
            ids = list(s.exec(query))
            found = {v.id: v for v in load_requests(s, now=now, ids=ids[:limit])}
        views = [found[i] for i in ids[:limit] if self._sees(actor, found[i])]
        self.gate.read(actor, "export.list", [f"export-request:{v.id}" for v in views],
                       {"status": status, "case": None, "view": view, "offset": offset})
        return RequestPage(tuple(views), more=len(ids) > limit,
                           dropped=len(ids[:limit]) - len(views))

    def _sees(self, actor: Actor, view: RequestView) -> bool:
        """The desk's own rule on one row (folded in Python, digests checked)."""
        return all(actor.sees(unit=c.unit, sensitivity=c.sensitivity)
                   for c in self._governing(view))

    def _governing(self, view: RequestView) -> Sequence[CaseView]:
        if view.case_id is not None:
            return (self.book.case(view.case_id),)
        assert view.recording_id is not None
        ids = {link.case_id for link in self.book.links(recording_ids=[view.recording_id])
               if link.active}
        return [self.book.case(i) for i in sorted(ids)]


__all__ = ["VIEWS", "DeskExports", "RequestPage", "reading"]
