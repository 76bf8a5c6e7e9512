"""Pending deletions one page at a time, for the web desk.

:meth:`retention.executor.RetentionExecutor.pending` folds every ``retentionaction`` row
of the catalog in Python; a station that has run for years has one open deletion per
expired recording. This is the same answer, paginated in the database: a deletion is
open when its recording's newest ``scheduled`` step has no ``cancelled`` or ``executed``
step after it, ordered by (due date, recording id) as the executor orders them. Only
steps with an audit binding count in SQL; the page's rows are then folded by the
executor's own :func:`~retention.actions.fold_actions` over :func:`vouched` rows (so a
step whose binding does not match its row counts for nothing, as in ``pending``).
Permission and audit are the executor's: ``retention.plan`` required, the read audited
as ``retention.pending`` with the recordings shown.

Each page is read from one snapshot of the catalog (:func:`_one_snapshot`), so its count
and its rows agree while others write, on PostgreSQL as on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Exists, String, and_, cast, exists, func, not_, or_, true
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from archive.bindings import vouched
from archive.bindings_model import Binding
from archive.catalog import Catalog
from records.models import Case, CaseEvent, CaseLink
from records.permissions import Actor, Gate, P
from retention.actions import PendingView, fold_actions
from retention.holds import HoldView, fold_holds
from retention.models import Hold, HoldRelease, RetentionAction


@dataclass(frozen=True, slots=True)
class PendingPage:
    views: tuple[PendingView, ...]
    total: int  # open deletions in all
    offset: int


_TABLE = str(RetentionAction.__tablename__)


@contextmanager
def _one_snapshot(catalog: Catalog) -> Iterator[Session]:
    """A session whose statements all read the catalog as of its first one, as a SQLite
    read transaction does. PostgreSQL's default (READ COMMITTED) gives each statement
    its own snapshot: a count and its page, or a page's ids and their rows, could then
    disagree when someone writes in between (as records.statistics_sql does)."""
    with catalog.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with Session(conn) as s:
            yield s


def _bound(step_id: Any) -> Exists:  # a column of step ids
    """The step has an audit binding (a row written behind evidock's back has none)."""
    return exists().where(col(Binding.table_name) == _TABLE,
                          col(Binding.row_id) == cast(step_id, String))


def _open_steps() -> ColumnElement[bool]:
    """The ``scheduled`` steps that open a deletion still pending."""
    later = aliased(RetentionAction)
    newer = exists().where(
        col(later.recording_id) == col(RetentionAction.recording_id),
        col(later.id) > col(RetentionAction.id),
        col(later.step).in_(("scheduled", "cancelled", "executed")), _bound(col(later.id)))
    return and_(col(RetentionAction.step) == "scheduled",
                col(RetentionAction.due_at).is_not(None), _bound(col(RetentionAction.id)),
                ~newer)


def pending_page(catalog: Catalog, gate: Gate, actor: Actor, now: datetime, *,
                 offset: int = 0, limit: int = 50) -> PendingPage:
    """Open deletions ``offset``…``offset+limit`` by due date (an audited read)."""
    gate.require(actor, P.RETENTION_PLAN, subjects=["retention"])
    where = _open_steps()
    with _one_snapshot(catalog) as s:
        # One pass: the open steps are counted by the same query that pages them.
        found = s.exec(select(col(RetentionAction.recording_id), func.count().over())
                       .where(where).order_by(col(RetentionAction.due_at),
                                              col(RetentionAction.recording_id))
                       .offset(max(offset, 0)).limit(max(limit, 1))).all()
        ids = [rid for rid, _n in found]
        total = found[0][1] if found else s.exec(
            select(func.count()).select_from(RetentionAction).where(where)).one()
        rows = s.exec(select(RetentionAction)
                      .where(col(RetentionAction.recording_id).in_(ids))).all()
        folded = fold_actions(vouched(s, rows))
    views = tuple(folded[i] for i in ids if i in folded)
    gate.read(actor, "retention.pending", [f"recording:{v.recording_id}" for v in views],
              {"now": now.isoformat(), "offset": offset, "shown": len(views), "total": total})
    return PendingPage(views=views, total=int(total), offset=offset)


@dataclass(frozen=True, slots=True)
class HoldPage:
    views: tuple[HoldView, ...]
    shown: int  # holds the reader may see, in all
    hidden: int  # holds left out: on a case or recording beyond their units or clearance
    offset: int


def _unbelieved(s: Session) -> tuple[list[int], list[int]]:
    """Ids of unlink rows and relabelling events no audit event vouches for: they count
    for nothing, as in the casebook's folds, so a forged unlink cannot un-hide. Only the
    rows that can decide a hold's visibility are checked (those of held recordings and of
    held or linked cases): vouching reads an audit event per row."""
    held = select(Hold.target).where(Hold.scope == "recording")
    cases = select(CaseLink.case_id).where(col(CaseLink.recording_id).in_(held))
    unlinks = list(s.exec(select(CaseLink).where(CaseLink.action == "unlink",
                                                 col(CaseLink.recording_id).in_(held))))
    labels = list(s.exec(select(CaseEvent).where(
        CaseEvent.kind == "sensitivity",
        or_(col(CaseEvent.case_id).in_(cases), col(CaseEvent.case_id).in_(
            select(Hold.target).where(Hold.scope == "case"))))))
    good_u, good_l = {r.id for r in vouched(s, unlinks)}, {r.id for r in vouched(s, labels)}
    return ([r.id or 0 for r in unlinks if r.id not in good_u],
            [r.id or 0 for r in labels if r.id not in good_l])


def _unseen(actor: Actor, case_t: Any, bad_labels: list[int]) -> ColumnElement[bool]:
    """``not Actor.sees`` of a case: its unit, and its last believed label."""
    e = CaseEvent.__table__.alias("e")  # type: ignore[attr-defined]
    last = (select(e.c.value).where(e.c.case_id == case_t.c.id, e.c.kind == "sensitivity")
            .order_by(e.c.id.desc()).limit(1))
    if bad_labels:
        last = last.where(e.c.id.not_in(bad_labels))
    label = func.coalesce(last.scalar_subquery(), case_t.c.sensitivity)
    unit_ok = true() if not actor.units else case_t.c.unit.in_(sorted(actor.units))
    label_ok = or_(label == "none", label.in_(sorted(actor.clearances)))
    return not_(and_(unit_ok, label_ok))


def _hold_hidden(actor: Actor, bad: tuple[list[int], list[int]]) -> ColumnElement[bool]:
    """HoldDesk._seen, negated: a case hold whose case, or a recording hold one of whose
    actively linked cases, the reader may not see (an officer hold is always seen)."""
    case_t = Case.__table__.alias("hc")  # type: ignore[attr-defined]
    link = CaseLink.__table__.alias("hl")  # type: ignore[attr-defined]
    u = CaseLink.__table__.alias("hu")  # type: ignore[attr-defined]
    removal = exists().where(u.c.recording_id == link.c.recording_id,
                             u.c.action == "unlink", u.c.unlinks == link.c.id)
    if bad[0]:
        removal = removal.where(u.c.id.not_in(bad[0]))
    on_case = exists().where(case_t.c.id == col(Hold.target),
                             _unseen(actor, case_t, bad[1]))
    on_recording = exists().where(link.c.recording_id == col(Hold.target),
                                  link.c.action == "link", not_(removal),
                                  case_t.c.id == link.c.case_id, _unseen(actor, case_t, bad[1]))
    return or_(and_(col(Hold.scope) == "case", on_case),
               and_(col(Hold.scope) == "recording", on_recording))


def holds_page(catalog: Catalog, gate: Gate, actor: Actor, *, active_only: bool = True,
               offset: int = 0, limit: int = 50) -> HoldPage:
    """One page of :meth:`HoldDesk.listing`'s answer (same rows, same order), audited as
    ``hold.list``; ``shown``/``hidden`` count every page."""
    if not any(actor.may(p) for p in (P.HOLD_PLACE, P.HOLD_RELEASE, P.RETENTION_PLAN)):
        gate.require(actor, P.HOLD_PLACE, subjects=["holds"])
    with _one_snapshot(catalog) as s:
        bad = _unbelieved(s)
        good = vouched(s, s.exec(select(HoldRelease)).all()) if active_only else []
        # A release no audit event vouches for does not end a hold (HoldDesk._rows).
        ended = not_(exists().where(col(HoldRelease.hold_id) == col(Hold.id),
                                    col(HoldRelease.id).in_([r.id for r in good])))
        base = [ended] if active_only else []
        hidden_c = _hold_hidden(actor, bad)
        count = select(func.count()).select_from(Hold)
        shown = s.exec(count.where(*base, not_(hidden_c))).one()
        hidden = s.exec(count.where(*base, hidden_c)).one()
        holds = list(s.exec(select(Hold).where(*base, not_(hidden_c))
                            .order_by(col(Hold.placed_at), col(Hold.id))
                            .offset(max(offset, 0)).limit(max(limit, 1))))
        releases = vouched(s, s.exec(select(HoldRelease).where(
            col(HoldRelease.hold_id).in_([h.id for h in holds]))).all())
        cases = [h.target for h in holds if h.scope == "case"]
        labels = {c.id: c.number for c in s.exec(select(Case).where(col(Case.id).in_(cases)))}
    views = tuple(fold_holds(holds, releases, labels))
    gate.read(actor, "hold.list", [f"hold:{v.id}" for v in views],
              {"active_only": active_only, "shown": int(shown), "hidden": int(hidden),
               "offset": offset})
    return HoldPage(views=views, shown=int(shown), hidden=int(hidden), offset=offset)


__all__ = ["HoldPage", "PendingPage", "holds_page", "pending_page"]
