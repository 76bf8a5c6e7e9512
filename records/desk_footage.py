"""Finding footage one page at a time, in the database (the web desk's search).

:meth:`records.dossier.Dossier.find` loads every case, link and matching recording and
decides visibility in Python; fine for the CLI, not for a page over 100,000 recordings.
:func:`find_page` asks the same question of the database: the same filters (case, unit
and stage on one and the same active link; officer; device; the window on the camera's
start, else the ingest time), the same rule (a recording is hidden when the reader lacks
``recording.view`` or ANY case it is actively linked to is beyond their units or
clearance, the case's label being the last *believed* relabelling), the same order, and
the same audit event (``case.find`` with ``shown``/``hidden``), with LIMIT/OFFSET.

Believed rows: an unlink or a relabelling that no audit event vouches for (written into
the catalog behind evidock's back) does not count, as in the Python folds. Those rows are
few (one per unlink or relabel); they are vouched for in Python and the ones that fail
are left out of the SQL by id, so a forged unlink cannot un-hide a secret recording.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, false, func, literal, not_, or_, true
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from archive.bindings import vouched
from archive.catalog import Catalog, Recording
from records.casebook import Casebook, CaseView, believed_events, fold_case
from records.dossier import FindQuery, Found, FoundLink, RecordingSummary, load_marks
from records.models import Case, CaseEvent, CaseLink
from records.permissions import Actor, Gate, P, strictest


@dataclass(frozen=True, slots=True)
class FootagePage:
    """One page of matches the reader may see; ``hidden`` counts every hidden match."""

    found: tuple[Found, ...]
    shown: int  # visible matches in all (every page)
    hidden: int
    offset: int
    limit: int

    @property
    def more(self) -> bool:
        return self.offset + len(self.found) < self.shown


def _unbelieved(s: Session) -> tuple[list[int], list[int]]:
    """Ids of unlink rows and relabelling events no audit event vouches for."""
    unlinks = list(s.exec(select(CaseLink).where(CaseLink.action == "unlink")))
    labels = list(s.exec(select(CaseEvent).where(CaseEvent.kind == "sensitivity")))
    good_u = {r.id for r in vouched(s, unlinks)}
    good_l = {r.id for r in vouched(s, labels)}
    return ([r.id or 0 for r in unlinks if r.id not in good_u],
            [r.id or 0 for r in labels if r.id not in good_l])


class _Sql:
    """The SQL pieces of one search, for one reader."""

    def __init__(self, actor: Actor, bad_unlinks: list[int], bad_labels: list[int]) -> None:
        self.actor, self.bad_unlinks, self.bad_labels = actor, bad_unlinks, bad_labels

    def active(self, link: Any) -> ColumnElement[bool]:
        """``link`` (an aliased CaseLink) is a link no believed unlink row removes (the
        removals are one uncorrelated list, as ``fold_links`` folds every row)."""
        u = CaseLink.__table__.alias("u")  # type: ignore[attr-defined]
        removed = select(u.c.unlinks).where(u.c.action == "unlink", u.c.unlinks.is_not(None))
        if self.bad_unlinks:
            removed = removed.where(u.c.id.not_in(self.bad_unlinks))
        return and_(link.c.action == "link", link.c.id.not_in(removed))

    def label(self, case_t: Any) -> ColumnElement[str]:
        """The case's label: its last believed relabelling, else the one it was made with."""
        e = CaseEvent.__table__.alias("e")  # type: ignore[attr-defined]
        last = (select(e.c.value).where(e.c.case_id == case_t.c.id, e.c.kind == "sensitivity")
                .order_by(e.c.id.desc()).limit(1))
        if self.bad_labels:
            last = last.where(e.c.id.not_in(self.bad_labels))
        return func.coalesce(last.scalar_subquery(), case_t.c.sensitivity)

    def case_visible(self, case_t: Any) -> ColumnElement[bool]:
        """``Actor.sees`` of the case: its unit and its label."""
        unit_ok = (true() if not self.actor.units
                   else case_t.c.unit.in_(sorted(self.actor.units)))
        label = self.label(case_t)
        label_ok = or_(label == "none", label.in_(sorted(self.actor.clearances))
                       if self.actor.clearances else false())
        return and_(unit_ok, label_ok)

    def hidden(self) -> ColumnElement[bool]:
        """``not recording_visible``: no permission, or one active link's case unseen.

        The unseen cases are found once (each case's label once), then the recordings
        actively linked to one of them (the link index), as one uncorrelated subquery
        the database evaluates once per search, not once per recording.
        """
        if not self.actor.may(P.RECORDING_VIEW):
            return true()
        case_t = Case.__table__.alias("hc")  # type: ignore[attr-defined]
        unseen = select(case_t.c.id).where(not_(self.case_visible(case_t)))
        link = CaseLink.__table__.alias("hl")  # type: ignore[attr-defined]
        hidden_ids = select(link.c.recording_id).where(link.c.case_id.in_(unseen),
                                                       self.active(link))
        return col(Recording.id).in_(hidden_ids)

    def matches(self, query: FindQuery, case_id: str | None) -> list[ColumnElement[bool]]:
        when = func.coalesce(Recording.camera_start, Recording.ingested_at)
        out: list[ColumnElement[bool]] = []
        if query.by_link():  # case, unit and stage on one and the same active link
            link = CaseLink.__table__.alias("fl")  # type: ignore[attr-defined]
            case_t = Case.__table__.alias("fc")  # type: ignore[attr-defined]
            linked = select(link.c.recording_id).where(self.active(link))
            if case_id is not None:
                linked = linked.where(link.c.case_id == case_id)
            if query.unit is not None:
                linked = linked.where(link.c.case_id.in_(
                    select(case_t.c.id).where(case_t.c.unit == query.unit)))
            if query.stage is not None:
                linked = linked.where(link.c.stage == query.stage)
            out.append(col(Recording.id).in_(linked))  # one subquery, evaluated once
        if query.officer is not None:
            out.append(col(Recording.officer_id) == query.officer)
        if query.device is not None:
            out.append(col(Recording.device_serial) == query.device)
        if query.since is not None:
            out.append(when >= query.since)
        if query.until is not None:
            out.append(when < query.until)
        return out


def find_page(catalog: Catalog, gate: Gate, actor: Actor, query: FindQuery, *,
              offset: int = 0, limit: int = 50) -> FootagePage:
    """One page of :meth:`Dossier.find`'s answer (same rows, same order), audited the
    same way; ``shown``/``hidden`` count every page."""
    query.check()
    gate.require(actor, P.CASE_VIEW)
    book = Casebook(catalog=catalog)
    case_id = None
    if query.case is not None:
        wanted = book.case(query.case)
        gate.require(actor, P.CASE_VIEW, subjects=[f"case:{wanted.id}"],
                     unit=wanted.unit, sensitivity=wanted.sensitivity)
        case_id = wanted.id
    offset, limit = max(0, offset), max(1, limit)
    when = func.coalesce(Recording.camera_start, Recording.ingested_at)
    with Session(catalog.engine) as s:
        sql = _Sql(actor, *_unbelieved(s))
        where = sql.matches(query, case_id)
        hidden = sql.hidden()
        counts = s.exec(select(func.count(), func.coalesce(func.sum(
            case((hidden, literal(1)), else_=literal(0))), 0)).select_from(Recording)
            .where(*where)).one()
        rows = list(s.exec(select(Recording).where(*where, not_(hidden))
                           .order_by(when, col(Recording.id)).offset(offset).limit(limit)))
    total, hidden_n = int(counts[0]), int(counts[1])
    found = _found(catalog, book, rows)
    gate.read(actor, "case.find", [f"recording:{f.recording.id}" for f in found],
              {"filters": query.to_json(), "shown": len(found), "hidden": hidden_n,
               "matched": total - hidden_n, "offset": offset, "limit": limit})
    return FootagePage(found=tuple(found), shown=total - hidden_n, hidden=hidden_n,
                       offset=offset, limit=limit)


def cases_by_id(catalog: Catalog, ids: Sequence[str]) -> dict[str, CaseView]:
    """The named cases as their believed events leave them (only these are loaded)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    with Session(catalog.engine) as s:
        rows = s.exec(select(Case).where(col(Case.id).in_(wanted))).all()
        events = believed_events(s, s.exec(select(CaseEvent).where(
            col(CaseEvent.case_id).in_(wanted))))
    by_case: dict[str, list[CaseEvent]] = {}
    for ev in events:
        by_case.setdefault(ev.case_id, []).append(ev)
    return {r.id: fold_case(r, by_case.get(r.id, [])) for r in rows}


def _found(catalog: Catalog, book: Casebook, rows: Sequence[Recording]) -> list[Found]:
    ids = [r.id for r in rows]
    links = [x for x in book.links(recording_ids=ids) if x.active] if ids else []
    cases = cases_by_id(catalog, [x.case_id for x in links])
    by_rec: dict[str, list[FoundLink]] = {}
    labels: dict[str, list[str]] = {}
    for x in links:
        by_rec.setdefault(x.recording_id, []).append(FoundLink(
            link_id=x.id, case_id=x.case_id, case_number=cases[x.case_id].number,
            stage=x.stage, start_us=x.start_us, end_us=x.end_us))
        labels.setdefault(x.recording_id, []).append(cases[x.case_id].sensitivity)
    marks = load_marks(catalog, ids)
    return [Found(recording=RecordingSummary.of(r, marks.get(r.id)),
                  links=tuple(by_rec.get(r.id, [])),
                  sensitivity=strictest(labels.get(r.id, []))) for r in rows]





def durations(catalog: Catalog, ids: Sequence[str]) -> dict[str, int]:
    """Each recording's length in µs by its ``ok`` renditions' segments (none: absent)."""
    from archive.catalog.models import Rendition, Segment  # noqa: PLC0415

    if not ids:
        return {}
    with Session(catalog.engine) as s:
        rows = s.exec(select(Rendition.recording_id, func.max(Segment.end_us))
                      .join(Segment, col(Segment.rendition_id) == col(Rendition.id))
                      .where(col(Rendition.recording_id).in_(list(ids)),
                             Rendition.status == "ok")
                      .group_by(col(Rendition.recording_id))).all()
    return {r: int(us) for r, us in rows if us is not None}
__all__ = ["FootagePage", "cases_by_id", "durations", "find_page"]
